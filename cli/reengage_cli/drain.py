"""Draining the follow-up queue from the CLI, the way Lambda's SQS event source would.

Messages are received in batches of 10, handed to the same batch function the
SenderFunction runs (`reengage.sender.process_queue_event`), and only the records it
did not report as failed are deleted; failed ones return to the queue after their
visibility timeout, exactly as in AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reengage.follow_up_queue import SqsFollowUpQueue
from reengage.sender import FollowUpSender, SendOutcome, process_queue_event

# How long a received message stays hidden locally before a retry may see it.
LOCAL_VISIBILITY_TIMEOUT = 30


@dataclass
class DrainReport:
    outcomes: list[SendOutcome] = field(default_factory=list)
    failed_records: int = 0


def _as_sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def queue_depth(sqs: Any, queue_url: str, in_flight: bool = False) -> int:
    """Messages waiting (and, with `in_flight`, those received but not yet deleted)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return int(attributes[names[0]]) + (int(attributes.get(names[1], 0)) if in_flight else 0)


def drain_queue(
    sqs: Any,
    queue_url: str,
    sender: FollowUpSender,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> DrainReport:
    """Process visible messages until none is left."""
    report = DrainReport()
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    region = queue_arn.split(":")[3]
    total = queue_depth(sqs, queue_url)
    done = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=LOCAL_VISIBILITY_TIMEOUT,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return report
        response, outcomes = process_queue_event(
            _as_sqs_event(messages, queue_arn, region), None, sender, SqsFollowUpQueue(sqs, queue_url).retry_later
        )
        report.outcomes.extend(outcomes)
        failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        report.failed_records += len(failed)
        finished = [message for message in messages if message["MessageId"] not in failed]
        if finished:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(finished)
                ],
            )
        done += len(messages)
        progress(done, max(total, done))
