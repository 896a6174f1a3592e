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
    recipients: tuple[str, ...] = ()  # the addresses that bounced or complained (else the email's)


def _first(tags: Mapping[str, Any], name: str) -> str:
    values = tags.get(name)
    value = values[0] if isinstance(values, list) and values else ""
    return value if isinstance(value, str) else ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_notification(message: Any) -> SesEvent:
    """An SES event (the SNS message body) as the facts reengage acts on; MalformedEventError for
    anything else (null, a list, wrong types), never another exception."""
    try:
        data = json.loads(message) if isinstance(message, str) else message
    except (ValueError, RecursionError) as error:
        raise MalformedEventError(f"not JSON: {str(error)[:200]}") from error
    if not isinstance(data, Mapping):
        raise MalformedEventError(f"the message is {type(data).__name__}, not an SES event object")
    kind = data.get("eventType") or data.get("notificationType")
    mail = data.get("mail")
    if not isinstance(kind, str) or not isinstance(mail, Mapping):
        raise MalformedEventError("no eventType/mail: not an SES event")
    raw_tags = mail.get("tags")
    tags: Mapping[str, Any] = raw_tags if isinstance(raw_tags, Mapping) else {}
    lead_id = decode_tag(_first(tags, "lead_id"))
    stage = _first(tags, "stage")
    if len(lead_id) > 2048 or len(_text(mail.get("messageId"))) > 1024:
        raise MalformedEventError("a lead id or message id longer than any SES event carries")

    def section(name: str) -> Mapping[str, Any]:
        value = data.get(name)
        return value if isinstance(value, Mapping) else {}

    bounce = section("bounce")
    detail = ""
    if kind == "Bounce":
        detail = f"{_text(bounce.get('bounceType'))}/{_text(bounce.get('bounceSubType'))}"
    elif kind == "Complaint":
        detail = _text(section("complaint").get("complaintFeedbackType"))
    elif kind == "Reject":
        detail = _text(section("reject").get("reason"))
    affected = section("bounce").get("bouncedRecipients") or section("complaint").get("complainedRecipients")
    listed = affected if isinstance(affected, list) else []
    addresses = [_text(entry.get("emailAddress")) for entry in listed if isinstance(entry, Mapping)]
    destination = mail.get("destination")
    if not any(addresses) and isinstance(destination, list):
        addresses = [_text(address) for address in destination]
    recipients = tuple(address for address in addresses if address and len(address) <= 320)[:50]
    return SesEvent(
        recipients=recipients,
        kind=kind,
        lead_id=lead_id,
        stage=stage,
        message_id=_text(mail.get("messageId")),
        at=_text(mail.get("timestamp")),
        hard_bounce=kind == "Bounce" and bounce.get("bounceType") == "Permanent",
        detail=detail,
    )
