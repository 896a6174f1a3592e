"""SES event publishing (configuration set -> SNS -> FeedbackFunction): bounces, complaints, deliveries.

Every follow-up carries message tags with its lead id and stage. A hard bounce or a
complaint stops the lead's sequence and suppresses the address; a soft bounce is only
counted; a Send or Delivery event confirms the send in the ledger and the history, which
is also what resolves a send recorded as "possibly sent" after a sender died.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from reengage.clock import format_time
from reengage.feedback import UnknownLeadError, record_response
from reengage.leads import STAGE_ORDER, FollowUpStage, ResponseStatus
from reengage.ports import LeadStore

logger = logging.getLogger(__name__)

_TAG_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def encode_tag(value: str) -> str:
    """SES tag values allow only [A-Za-z0-9_-]: other ids travel hex-encoded behind `h_`."""
    return value if _TAG_SAFE.match(value) and not value.startswith("h_") else "h_" + value.encode().hex()


def decode_tag(value: str) -> str:
    if value.startswith("h_"):
        try:
            return bytes.fromhex(value[2:]).decode()
        except ValueError:
            return value
    return value


class MalformedEventError(ValueError):
    """Not an SES event notification reengage can read."""


@dataclass(frozen=True)
class SesEvent:
    kind: str  # Bounce, Complaint, Delivery, Send, Reject, ...
    lead_id: str
    stage: str
    message_id: str
    at: str
    hard_bounce: bool = False
    detail: str = ""


def parse_notification(message: str | Mapping[str, Any]) -> SesEvent:
    """An SES event (the SNS message body) as the facts reengage acts on."""
    try:
        data = json.loads(message) if isinstance(message, str) else dict(message)
    except ValueError as error:
        raise MalformedEventError(f"not JSON: {error}") from error
    kind = data.get("eventType") or data.get("notificationType")
    mail = data.get("mail")
    if not isinstance(kind, str) or not isinstance(mail, dict):
        raise MalformedEventError("no eventType/mail: not an SES event")
    tags = mail.get("tags") or {}
    lead_id = decode_tag((tags.get("lead_id") or [""])[0])
    stage = (tags.get("stage") or [""])[0]
    bounce = data.get("bounce") or {}
    detail = ""
    if kind == "Bounce":
        detail = f"{bounce.get('bounceType', '')}/{bounce.get('bounceSubType', '')}"
    elif kind == "Complaint":
        detail = str((data.get("complaint") or {}).get("complaintFeedbackType", ""))
    elif kind == "Reject":
        detail = str((data.get("reject") or {}).get("reason", ""))
    return SesEvent(
        kind=kind,
        lead_id=lead_id,
        stage=stage,
        message_id=str(mail.get("messageId", "")),
        at=str(mail.get("timestamp", "")),
        hard_bounce=kind == "Bounce" and bounce.get("bounceType") == "Permanent",
        detail=detail,
    )


def apply_event(event: SesEvent, store: LeadStore, now: datetime, max_followups: int) -> str:
    """Act on one event; returns what was done (for logs and metrics)."""
    if not event.lead_id:
        return "ignored_untagged"
    try:
        if event.kind == "Complaint":
            record_response(store, event.lead_id, ResponseStatus.COMPLAINED, "ses-complaint", now, max_followups)
            return "complaint"
        if event.kind == "Bounce":
            if not event.hard_bounce:
                return "soft_bounce"
            record_response(
                store, event.lead_id, ResponseStatus.BOUNCED, "ses-bounce", now, max_followups, detail=event.detail
            )
            return "hard_bounce"
    except UnknownLeadError:
        return "unknown_lead"
    if event.kind in ("Send", "Delivery", "Reject") and event.stage in STAGE_ORDER:
        return _confirm(event, store, now)
    return "ignored"


def _confirm(event: SesEvent, store: LeadStore, now: datetime) -> str:
    """Send/Delivery: SES took the email. Recorded on the ledger without touching its state, so a
    sender still recording its send is not disturbed; a send already settled as "possibly sent"
    becomes "sent". Reject: SES dropped an email it had accepted."""
    stage = FollowUpStage(event.stage)
    if store.ledger_record(event.lead_id, stage) is None:
        return "unknown_send"
    if event.kind == "Reject":
        store.reject_after_send(event.lead_id, stage)
        _append_history(store, event, "rejected_by_ses", now)
        return "rejected"
    resolved = store.confirm_send(event.lead_id, stage, event.kind, event.message_id)
    if resolved:
        _append_history(store, event, "confirmed_sent", now)
        return "possibly_sent_resolved"
    if event.kind == "Delivery":
        _append_history(store, event, "delivered", now)
    return event.kind.lower()


def _append_history(store: LeadStore, event: SesEvent, outcome: str, now: datetime) -> None:
    for _ in range(3):
        lead = store.get(event.lead_id)
        if lead is None:
            return
        entry = {"stage": event.stage, "at": event.at or format_time(now), "outcome": outcome}
        entry["message_id"] = event.message_id
        updated = replace(lead, engagement_history=[*lead.engagement_history, entry], updated_at=format_time(now))
        if store.put(updated, previous=lead):
            return
    logger.warning("could not record an SES event on the lead", extra={"lead_id": event.lead_id})
