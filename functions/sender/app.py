"""SenderFunction: turn each queued follow-up request into at most one email.

The SQS glue lives here: partial batch responses (only failed records come back), and an
exponential backoff for records that failed on throttling or an outage. `reengage run`
drains the queue locally through `handle_batch`, exactly as this handler does.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from reengage import wiring
from reengage.adapters.sqs_records import (
    InvalidRecordError,
    QueuedFollowUp,
    partial_batch_response,
    read_follow_up_record,
)
from reengage.observability import logger, metrics, reject, send_outcome_metrics
from reengage.ports import PoisonMessageError, TransientError
from reengage.services.sender import FollowUpSender, SendOutcome
from reengage.settings import Settings

RetryLater = Callable[[str, int], None]


def retry_delay_seconds(receive_count: int, jitter: float) -> int:
    """Exponential backoff for a throttled record: 30 s, 60 s, 120 s ... capped at 15 minutes, +/-20%."""
    base = min(900, 30 * 2 ** min(10, max(0, receive_count - 1)))  # the cap is reached by the 6th: no huge powers
    return max(1, int(base * (0.8 + 0.4 * jitter)))


def _records(event: Any) -> list[Any]:
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        reject("SQS event", "no Records list")
        return []
    return records


def handle_batch(
    event: Any, context: Any, sender: FollowUpSender, retry_later: RetryLater | None = None
) -> tuple[dict[str, Any], list[SendOutcome]]:
    """Handle an SQS batch with partial-batch failures: only failed records come back.

    A record that failed on throttling or an outage comes back after an exponential
    backoff (its visibility timeout is changed); any other failure waits out the queue's
    visibility timeout and goes to the dead-letter queue after the redrive count. A record
    that can never succeed (not a follow-up request, or for a lead that does not exist) is a
    counted rejection (InvalidEvents, one log line with its body), never retried.
    """
    outcomes: list[SendOutcome] = []
    throttled: list[tuple[str, int]] = []
    valid: list[QueuedFollowUp] = []
    for record in _records(event):
        try:
            valid.append(read_follow_up_record(record))
        except InvalidRecordError as error:
            message_id = record.get("messageId") if isinstance(record, Mapping) else None
            body = record.get("body") if isinstance(record, Mapping) else None
            reject("SQS record", str(error), message_id=str(message_id)[:100], body=str(body)[:300])

    def handle(queued: QueuedFollowUp) -> str:
        try:
            outcome = sender.send(queued.request)
        except TransientError as error:
            logger.warning("follow-up retried later", extra={"lead_id": queued.request.lead_id, "error": str(error)})
            throttled.append((queued.receipt_handle, queued.receive_count))
            raise
        except PoisonMessageError as error:
            reject("SQS record", str(error), message_id=queued.message_id)
            return "rejected"
        except Exception:
            # Back to the queue (and after the redrive count to the dead-letter queue): say why.
            logger.exception("follow-up failed", extra={"lead_id": queued.request.lead_id})
            raise
        outcomes.append(outcome)
        return outcome.kind

    if not valid:
        return {"batchItemFailures": []}, outcomes
    sender.writer.start_batch(context.get_remaining_time_in_millis if context is not None else None)
    # The batch's leads are read in one call and its sends counted against the cap in one.
    sender.start_batch([queued.request.lead_id for queued in valid])
    try:
        response = partial_batch_response(valid, handle)
    finally:
        sender.finish_batch()
    if retry_later is not None:
        for receipt_handle, receive_count in throttled:
            retry_later(receipt_handle, retry_delay_seconds(receive_count, random.random()))
    return dict(response), outcomes


def build_sender(settings: Settings) -> FollowUpSender:
    return FollowUpSender(
        wiring.stores(settings),
        wiring.ses_mailer(settings),
        wiring.message_writer(settings),
        settings,
        unsubscribe=wiring.unsubscribe_links(settings),
        reply_key=lambda: wiring.reply_key(settings),
    )


@cache
def _deployment() -> tuple[FollowUpSender, RetryLater]:
    settings = Settings.from_env(os.environ)
    return build_sender(settings), wiring.follow_up_queue(settings).retry_later


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    sender, retry_later = _deployment()
    response, outcomes = handle_batch(event, context, sender, retry_later)
    send_outcome_metrics(outcomes, retried=len(response["batchItemFailures"]))
    return response
