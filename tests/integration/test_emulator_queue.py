"""The emulator's queue costs what SQS's does per send: nothing that grows with the queue's depth."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.conftest import Emulator


def _count_reads_of_message_state(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How often moto looks at a message's visibility or delay (once per message it walks)."""
    from moto.sqs.models import Message

    reads = [0]
    for name in ("visible", "delayed"):
        original = getattr(Message, name)

        def counted(message: Any, _original: Any = original) -> bool:
            reads[0] += 1
            return bool(_original.fget(message))

        monkeypatch.setattr(Message, name, property(counted))
    return reads


def test_sending_does_not_walk_the_messages_already_queued(aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    sqs = boto3.client("sqs")
    queue_url = aws.settings.queue_url
    # Given a queue holding 300 messages
    for batch in range(30):
        entries: list[Any] = [{"Id": str(n), "MessageBody": json.dumps({"n": batch * 10 + n})} for n in range(10)]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    reads = _count_reads_of_message_state(monkeypatch)
    # When one more message and one more batch are sent
    sqs.send_message(QueueUrl=queue_url, MessageBody="{}")
    sqs.send_message_batch(QueueUrl=queue_url, Entries=[{"Id": "a", "MessageBody": "{}"}])
    # Then no queued message was looked at (moto alone walks all 300 three times per message)
    assert reads[0] == 0
    # And the depth is still reported exactly, with the redrive policy as JSON
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "302"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] >= 1
    named = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert named["Attributes"] == {"ApproximateNumberOfMessagesNotVisible": "0"}
