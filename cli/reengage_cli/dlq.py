"""`reengage dlq list|redrive`: the follow-up requests that failed too often, and replaying them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

# Listed messages stay hidden this long, so a listing can page past the first ten.
LIST_VISIBILITY_SECONDS = 30


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    lead_id: str
    stage: str
    receive_count: int
    body: str


def dead_letter_queue_url(sqs: Any, queue_url: str) -> str | None:
    """The queue's dead-letter queue, from its redrive policy."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])["Attributes"]
    if "RedrivePolicy" not in attributes:
        return None
    arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
    account, name = arn.split(":")[4], arn.split(":")[5]
    try:
        return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])
    except ClientError:
        return None


def _describe(message: dict[str, Any]) -> DeadLetter:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return DeadLetter(
        message_id=message["MessageId"],
        lead_id=str(body.get("lead_id", "?")),
        stage=str(body.get("stage", "?")),
        receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
        body=message["Body"],
    )


def _receive(sqs: Any, queue_url: str, visibility: int, limit: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while len(messages) < limit:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, limit - len(messages)),
            VisibilityTimeout=visibility,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            break
        messages.extend(batch)
    return messages


def list_dead_letters(sqs: Any, dlq_url: str, limit: int) -> list[DeadLetter]:
    return [_describe(message) for message in _receive(sqs, dlq_url, LIST_VISIBILITY_SECONDS, limit)]


def redrive(sqs: Any, dlq_url: str, queue_url: str, limit: int) -> int:
    """Move up to `limit` messages back to the follow-up queue; each is deleted only once re-sent."""
    moved = 0
    while moved < limit:
        batch = _receive(sqs, dlq_url, 60, min(10, limit - moved))
        if not batch:
            return moved
        response = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(index), "MessageBody": message["Body"]} for index, message in enumerate(batch)],
        )
        sent = {int(entry["Id"]) for entry in response.get("Successful", [])}
        done = [message for index, message in enumerate(batch) if index in sent]
        if done:
            sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[{"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]} for i, message in enumerate(done)],
            )
        moved += len(done)
        if len(done) < len(batch):
            return moved
    return moved
