"""CRM domain events, derived from a lead's change (the table stream's old and new images).

Published to an EventBridge bus (source `reengage`, detail-type = the event's name) at
least once: a redelivered stream record gives the same events with the same
`idempotency_key`, which subscribers use to drop duplicates. Schemas: docs/events/*.json.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reengage.domain.leads import OPEN_RESPONSE_STATUSES, FollowUpPolicy, Lead, ResponseStatus

SOURCE = "reengage"
SCHEMA_VERSION = 1
_SUPPRESSING = frozenset({ResponseStatus.UNSUBSCRIBED, ResponseStatus.BOUNCED, ResponseStatus.COMPLAINED})
_SKIPPED_OUTCOMES = frozenset({"stopped", "rejected", "possibly_sent"})


class EventType(StrEnum):
    FOLLOW_UP_SENT = "FollowUpSent"
    FOLLOW_UP_SKIPPED = "FollowUpSkipped"
    LEAD_RESPONDED = "LeadResponded"
    LEAD_SUPPRESSED = "LeadSuppressed"
    SEQUENCE_FINISHED = "SequenceFinished"


@dataclass(frozen=True)
class CrmEvent:
    type: EventType
    lead_id: str
    idempotency_key: str
    occurred_at: str
    detail: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The EventBridge `detail` (docs/events/<type>.json)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "event": self.type.value,
            "idempotency_key": self.idempotency_key,
            "lead_id": self.lead_id,
            "occurred_at": self.occurred_at,
            **self.detail,
        }


def _key(kind: EventType, lead_id: str, *parts: str) -> str:
    return hashlib.sha256("\x1f".join([kind.value, lead_id, *parts]).encode()).hexdigest()[:32]


def _new_entries(old: Lead, new: Lead) -> list[dict[str, Any]]:
    """History entries the change appended (the history is trimmed at the front, never edited)."""
    seen = {json.dumps(entry, sort_keys=True, default=str) for entry in old.engagement_history}
    return [entry for entry in new.engagement_history if json.dumps(entry, sort_keys=True, default=str) not in seen]


def _who(lead: Lead) -> dict[str, Any]:
    return {"email": lead.email, "name": lead.name, "company": lead.company}


def events_for_change(old: Lead | None, new: Lead | None, policy: FollowUpPolicy) -> list[CrmEvent]:
    """The events one change of a lead means. None for a new lead (what it arrives with, an import or
    a CRM record, happened elsewhere) and none for a removal."""
    if old is None or new is None:
        return []
    events: list[CrmEvent] = []
    at = new.updated_at or ""
    who = _who(new)
    for entry in _new_entries(old, new):
        outcome, stage, when = str(entry.get("outcome", "")), str(entry.get("stage", "")), str(entry.get("at") or at)
        if outcome == "sent":
            detail = {
                **who,
                "stage": stage,
                "message_id": entry.get("message_id", ""),
                "generator": entry.get("generator", ""),
            }
            events.append(
                CrmEvent(EventType.FOLLOW_UP_SENT, new.id, _key(EventType.FOLLOW_UP_SENT, new.id, stage), when, detail)
            )
        elif outcome in _SKIPPED_OUTCOMES:
            reason = str(entry.get("reason") or outcome)
            detail = {**who, "stage": stage, "reason": reason}
            key = _key(EventType.FOLLOW_UP_SKIPPED, new.id, stage, when, reason)
            events.append(CrmEvent(EventType.FOLLOW_UP_SKIPPED, new.id, key, when, detail))
    old_status = old.response_status or ""
    status = new.response_status or ""
    if status != old_status and status not in OPEN_RESPONSE_STATUSES:
        kind = EventType.LEAD_SUPPRESSED if status in _SUPPRESSING else EventType.LEAD_RESPONDED
        detail = {**who, "status": status, "previous_status": old_status or ResponseStatus.NO_RESPONSE.value}
        if kind is EventType.LEAD_SUPPRESSED:
            detail["reason"] = status
        events.append(CrmEvent(kind, new.id, _key(kind, new.id, status, str(new.version)), at, detail))
    elif new.suppressed and not old.suppressed:
        # The address was suppressed through another lead (the same person under another record).
        key = _key(EventType.LEAD_SUPPRESSED, new.id, "suppressed", str(new.version))
        detail = {**who, "status": status, "previous_status": old_status, "reason": "address suppressed"}
        events.append(CrmEvent(EventType.LEAD_SUPPRESSED, new.id, key, at, detail))
    if policy.standing(old).due and not (verdict := policy.standing(new)).due:
        reason = verdict.reason.value if verdict.reason else "finished"
        detail = {**who, "reason": reason, "last_stage": new.follow_up_stage or "", "status": status}
        key = _key(EventType.SEQUENCE_FINISHED, new.id, str(new.version))
        events.append(CrmEvent(EventType.SEQUENCE_FINISHED, new.id, key, at, detail))
    return events
