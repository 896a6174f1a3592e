"""Validating imported lead rows and merging them into stored leads.

A row is checked whole before anything is written; every problem is reported with
the row number, the lead id and the field, so one import run shows all of them.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from reengage.clock import InvalidTimeError, format_time, parse_time
from reengage.leads import (
    DEFAULT_ENGAGEMENT_STAGE,
    KNOWN_CONFIDENCE,
    KNOWN_ENGAGEMENT_STATUSES,
    SENT,
    STAGE_ORDER,
    Lead,
    ResponseStatus,
    ScheduleState,
    ascii_domain,
    due_schedule,
    email_problem,
)

# Ids derived from an email are stable across imports: the same address is the same lead.
LEAD_ID_NAMESPACE = uuid.UUID("6f1d2a1e-8a52-4c1f-9a57-1f0d3f9b2c11")
TEXT_FIELDS = {
    "id": 256,
    "name": 256,
    "email": 254,
    "company": 256,
    "company_website": 2048,
    "engagement_status": 64,
    "engagement_stage": 64,
    "email_confidence_level": 64,
    "follow_up_stage": 64,
    "response_status": 64,
}
TIME_FIELDS = ("last_contacted", "created_at", "updated_at")
KNOWN_FIELDS = frozenset({*TEXT_FIELDS, *TIME_FIELDS, "eligible_for_reengagement", "engagement_history"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_HISTORY_LIMIT = 100_000
_FUTURE_TOLERANCE = timedelta(days=1)


@dataclass(frozen=True)
class RowError:
    row: int
    lead_id: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row} (lead {self.lead_id or '?'}): {self.field}: {self.reason}"


@dataclass(frozen=True)
class ImportedLead:
    """A valid row: the fields it sets (absent or empty cells are not set)."""

    row: int
    lead_id: str
    fields: dict[str, Any]


def derive_lead_id(email: str) -> str:
    return str(uuid.uuid5(LEAD_ID_NAMESPACE, email.strip().lower()))


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    return None


def _history(value: Any) -> list[dict[str, Any]] | None:
    parsed = value
    if isinstance(value, str):
        if len(value) > _HISTORY_LIMIT:
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
    if isinstance(parsed, list) and all(isinstance(entry, dict) for entry in parsed):
        return parsed
    return None


def _check_website(value: str) -> str | None:
    host = re.sub(r"^https?://", "", value, flags=re.IGNORECASE).split("/")[0].split(":")[0]
    if ascii_domain(host) is None:
        return "not a web address (expected e.g. https://example.com)"
    return None


def validate_row(row_number: int, row: dict[str, Any], now: datetime) -> ImportedLead | list[RowError]:
    """Check one row; returns what it sets, or every problem found in it."""
    raw_id = row.get("id")
    email_value = row.get("email")
    lead_id = str(raw_id).strip() if raw_id not in (None, "") else ""
    if not lead_id and isinstance(email_value, str) and email_problem(email_value.strip()) is None:
        lead_id = derive_lead_id(email_value)
    errors: list[RowError] = []

    def error(field: str, reason: str) -> None:
        errors.append(RowError(row_number, lead_id, field, reason))

    fields: dict[str, Any] = {}
    for name in sorted(set(row) - KNOWN_FIELDS):
        error(name, f"unknown field (known: {', '.join(sorted(KNOWN_FIELDS))})")
    for name, cap in TEXT_FIELDS.items():
        value = row.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            error(name, f"must be text, got {type(value).__name__}")
            continue
        if _CONTROL.search(value):
            error(name, "contains control characters (line breaks, tabs...)")
            continue
        value = value.strip()
        if len(value) > cap:
            error(name, f"longer than {cap} characters")
            continue
        if value:
            fields[name] = value

    email = fields.get("email", "")
    if not email:
        if "email" not in {e.field for e in errors}:
            error("email", "required")
    elif problem := email_problem(email):
        error("email", f"invalid address: {problem}")
    status = fields.get("engagement_status")
    if status is None:
        error("engagement_status", "required")
    elif status not in KNOWN_ENGAGEMENT_STATUSES:
        error("engagement_status", f"unknown value {status!r} (known: {', '.join(sorted(KNOWN_ENGAGEMENT_STATUSES))})")
    confidence = fields.get("email_confidence_level")
    if confidence is not None and confidence not in KNOWN_CONFIDENCE:
        error("email_confidence_level", f"unknown value {confidence!r} (known: {', '.join(sorted(KNOWN_CONFIDENCE))})")
    response = fields.get("response_status")
    if response is not None and response not in {status.value for status in ResponseStatus}:
        known = ", ".join(status.value for status in ResponseStatus)
        error("response_status", f"unknown value {response!r} (known: {known})")
    stage = fields.get("follow_up_stage")
    if stage is not None and stage not in STAGE_ORDER:
        error("follow_up_stage", f"unknown value {stage!r} (known: empty, Followup_1, Followup_2)")
    website = fields.get("company_website")
    if website is not None and (problem := _check_website(website)):
        error("company_website", problem)

    for name in TIME_FIELDS:
        value = row.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or _CONTROL.search(value):
            error(name, "must be an ISO-8601 time without control characters")
            continue
        try:
            moment = parse_time(value)
        except InvalidTimeError:
            error(name, f"not an ISO-8601 time: {value!r}")
            continue
        if moment > now + _FUTURE_TOLERANCE:
            error(name, f"{value} is in the future")
            continue
        fields[name] = format_time(moment)
    if status == SENT and "last_contacted" not in fields and "last_contacted" not in {e.field for e in errors}:
        error("last_contacted", "required when engagement_status is Sent")

    flag = row.get("eligible_for_reengagement")
    if flag not in (None, "") and _boolean(flag) is None:
        error("eligible_for_reengagement", f"must be true or false, got {flag!r}")
    history = row.get("engagement_history")
    if history not in (None, ""):
        parsed = _history(history)
        if parsed is None:
            error("engagement_history", "must be a JSON list of objects (at most 100 kB)")
        else:
            fields["engagement_history"] = parsed
    if errors:
        return errors
    fields.pop("id", None)
    return ImportedLead(row_number, lead_id, fields)


def merge_import(existing: Lead | None, imported: ImportedLead, now: datetime, max_followups: int) -> Lead:
    """The stored lead after an import row: row fields win, reengage's own state is kept.

    A lead in flight (claimed or being sent) keeps its schedule; the sender re-checks
    the new state before sending. Other leads get their schedule derived afresh.
    """
    base = existing or Lead(id=imported.lead_id, created_at=format_time(now))
    lead = replace(base, **imported.fields)
    lead.engagement_stage = lead.engagement_stage or DEFAULT_ENGAGEMENT_STAGE
    lead.response_status = lead.response_status or ResponseStatus.NO_RESPONSE.value
    lead.updated_at = format_time(now)
    if lead.schedule_state in (ScheduleState.CLAIMED, ScheduleState.SENDING):
        return lead
    schedule = due_schedule(lead, max_followups)
    lead.schedule_state, lead.schedule_at = (schedule[0].value, schedule[1]) if schedule else (None, None)
    lead.claim_stage = None
    lead.eligible_for_reengagement = False
    return lead
