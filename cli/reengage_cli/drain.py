"""Draining the follow-up queue from the CLI, the way Lambda's SQS event source would.

Messages are received in batches of 10, handed to the SenderFunction's own batch
function (`handle_batch` in functions/sender/app.py, loaded from the checkout), and only
the records it did not report as failed are deleted; failed ones return to the queue
after their visibility timeout, exactly as in AWS.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from reengage.adapters.sqs_queue import SqsFollowUpQueue
from reengage.domain.clock import format_time, utc_now
from reengage.domain.ses_events import SesEvent
from reengage.services.responses import apply_ses_event
from reengage.services.sender import SENT, FollowUpSender, SendOutcome
from reengage.settings import Settings

# How long a received message stays hidden locally before a retry may see it.
LOCAL_VISIBILITY_TIMEOUT = 30
DELAYED_POLL_SECONDS = 0.5


SENDER_HANDLER = Path(__file__).resolve().parents[2] / "functions" / "sender" / "app.py"


@cache
def sender_function() -> ModuleType:
    """functions/sender/app.py, the module Lambda loads for SenderFunction."""
    spec = importlib.util.spec_from_file_location("reengage_sender_function", SENDER_HANDLER)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{SENDER_HANDLER}: run reengage from its checkout")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through sys.modules
    # The handler gives the `reengage` logger Lambda's JSON output; the CLI keeps its own (one line, --verbose).
    package_logger = logging.getLogger("reengage")
    handlers, level, propagate = list(package_logger.handlers), package_logger.level, package_logger.propagate
    spec.loader.exec_module(module)
    package_logger.handlers[:] = handlers
    package_logger.setLevel(level)
    package_logger.propagate = propagate
    return module


def build_sender(settings: Settings) -> FollowUpSender:
    sender: FollowUpSender = sender_function().build_sender(settings)
    return sender


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
    """Messages waiting, delayed ones included (and, with `in_flight`, those received but not yet deleted)."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    waiting = int(attributes[names[0]]) + int(attributes.get(names[1], 0))
    return waiting + (int(attributes.get(names[2], 0)) if in_flight else 0)


def delayed_messages(sqs: Any, queue_url: str) -> int:
    """Messages the scheduler spread out (DelaySeconds) that are not visible yet."""
    name = "ApproximateNumberOfMessagesDelayed"
    return int(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[name])["Attributes"].get(name, 0))


def _deliveries(sender: FollowUpSender, outcomes: list[SendOutcome]) -> None:
    """What SES's event destination does in AWS: a Delivery event to FeedbackFunction for each email
    sent (the emulator has no SES events), so the ledger learns SES's message id, which replies name."""
    for outcome in outcomes:
        if outcome.kind == SENT and outcome.message_id:
            delivered = SesEvent("Delivery", outcome.lead_id, outcome.stage, outcome.message_id, format_time(utc_now()))
            apply_ses_event(delivered, sender.stores, utc_now(), sender.policy)


def drain_queue(
    sqs: Any,
    queue_url: str,
    sender: FollowUpSender,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> DrainReport:
    """Process messages until none is left, waiting for the delayed ones as Lambda's poller would."""
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
            if not delayed_messages(sqs, queue_url):
                return report
            time.sleep(DELAYED_POLL_SECONDS)  # spread at the SES rate: the next ones show within a second
            continue
        response, outcomes = sender_function().handle_batch(
            _as_sqs_event(messages, queue_arn, region), None, sender, SqsFollowUpQueue(sqs, queue_url).retry_later
        )
        report.outcomes.extend(outcomes)
        _deliveries(sender, outcomes)
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
