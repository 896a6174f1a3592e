"""The SQS records SenderFunction reads, checked by hand, and its partial batch response.

A pydantic model (Powertools' `SqsRecordModel` with `body: Json[...]`) checked the records and
Powertools' `BatchProcessor` built the response until issue 13: their imports (pydantic, asyncio
and every Powertools event data class) were about a third of the sender's cold-start import, for
work that takes microseconds. The body rules are that model's and the response is that processor's (the
tests hold each side by side with the original). Of the envelope only what the sender reads is
checked: the message id the response names, the receipt handle and the receive count the backoff
uses. Everything else in a record comes from Lambda's poller, not from the queue's writers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from reengage.domain.leads import FollowUpStage
from reengage.ports import FollowUpRequest

MAX_LEAD_ID = 2048
MAX_CAMPAIGN_ID = 128
STAGES = frozenset(stage.value for stage in FollowUpStage)


class InvalidRecordError(ValueError):
    """Not a follow-up request: no retry can change that."""


@dataclass(frozen=True)
class QueuedFollowUp:
    message_id: str
    receipt_handle: str
    receive_count: int
    request: FollowUpRequest


def read_follow_up_record(record: object) -> QueuedFollowUp:
    """The follow-up request an SQS record carries, or InvalidRecordError naming up to three problems."""
    if not isinstance(record, Mapping):
        raise InvalidRecordError(f"record: not an object ({type(record).__name__})")
    problems: list[str] = []
    message_id = _text(record, "messageId", problems)
    receipt_handle = _text(record, "receiptHandle", problems)
    if record.get("eventSource") != "aws:sqs":
        problems.append("eventSource: not aws:sqs")
    attributes = record.get("attributes")
    count = attributes.get("ApproximateReceiveCount") if isinstance(attributes, Mapping) else None
    if not (isinstance(count, str) and count.isascii() and count.isdigit() and len(count) <= 9):
        problems.append("attributes.ApproximateReceiveCount: not a count")
    request = _request(record.get("body"), problems)
    if problems or request is None or not isinstance(count, str):
        raise InvalidRecordError("; ".join(problems[:3]))
    return QueuedFollowUp(message_id, receipt_handle, int(count), request)


def partial_batch_response(
    records: Iterable[QueuedFollowUp], handle: Callable[[QueuedFollowUp], object]
) -> dict[str, list[dict[str, str]]]:
    """Lambda's partial batch response: each record handled in turn; those whose handler raised are
    named for SQS to deliver again, the others are deleted from the queue (as `BatchProcessor` with
    `raise_on_entire_batch_failure=False` answers for SQS)."""
    failures = []
    for record in records:
        try:
            handle(record)
        except Exception:  # whatever went wrong, the record stays on the queue for another try
            failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}


def _text(record: Mapping[object, object], name: str, problems: list[str]) -> str:
    value = record.get(name)
    if isinstance(value, str):
        return value
    problems.append(f"{name}: not a string")
    return ""


def _request(body: object, problems: list[str]) -> FollowUpRequest | None:
    """The body as the scheduler writes it (`reengage.adapters.sqs_queue.encode_request`)."""
    if not isinstance(body, str | bytes | bytearray):
        problems.append("body: not a string")
        return None
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError) as error:  # RecursionError: nesting deeper than the parser goes
        problems.append(f"body: invalid JSON ({type(error).__name__})")
        return None
    if not isinstance(fields, dict):
        problems.append("body: not a JSON object")
        return None
    lead_id = _field(fields, "lead_id", 1, MAX_LEAD_ID, None, problems)
    if lead_id is not None and len(lead_id.encode("utf-8", "surrogatepass")) > MAX_LEAD_ID:
        # DynamoDB's key limit is in bytes: a longer id would fail every read, retried to the dead-letter queue
        problems.append(f"body.lead_id: longer than {MAX_LEAD_ID} bytes")
        lead_id = None
    given = fields.get("stage")
    stage = given if isinstance(given, str) and given in STAGES else None
    if stage is None:
        problems.append(f"body.stage: not one of {', '.join(sorted(STAGES))}")
    campaign_id = _field(fields, "campaign_id", 0, MAX_CAMPAIGN_ID, "", problems)
    if lead_id is None or campaign_id is None or stage is None:
        return None
    return FollowUpRequest(lead_id, FollowUpStage(stage), campaign_id)


def _field(
    fields: dict[str, object], name: str, shortest: int, longest: int, default: str | None, problems: list[str]
) -> str | None:
    if name not in fields and default is None:
        problems.append(f"body.{name}: missing")
        return None
    value = fields.get(name, default)
    if not isinstance(value, str):
        problems.append(f"body.{name}: not a string")
        return None
    if not shortest <= len(value) <= longest:
        problems.append(f"body.{name}: {len(value)} characters, not {shortest} to {longest}")
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON allows the escape; DynamoDB and SES do not)
        problems.append(f"body.{name}: not valid Unicode")
        return None
    return value
