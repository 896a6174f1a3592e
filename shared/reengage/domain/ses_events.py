"""SES events (configuration set -> SNS -> FeedbackFunction) read into the facts reengage acts on.

Every follow-up carries message tags with its lead id and stage; what is done with each
event (stop, suppress, confirm a send) is decided in services/responses.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reengage.domain.correlation import decode_tag


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
