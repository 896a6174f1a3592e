"""Imported lead rows: validating them, and merging them into stored leads under the ownership rules.

A row is checked whole before anything is written; every problem is reported with
the row number, the lead id and the field, so one import run shows all of them.

Who owns what: the CRM owns who the lead is (name, email, company, website, engagement
status and stage, email confidence) and the first contact; reengage owns the sequence
(follow-up stage, schedule, the contacts it made, the responses it learned, history). An
import updates what the CRM owns and never moves what reengage owns backwards: it may
stop a sequence (any response but No Response), never revive one (only `reengage mark`).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from reengage.domain.clock import InvalidTimeError, format_time, parse_time
from reengage.domain.correlation import lead_id_problem
from reengage.domain.leads import (
    DEFAULT_ENGAGEMENT_STAGE,
    HISTORY_ENTRIES,
    KNOWN_CONFIDENCE,
    KNOWN_ENGAGEMENT_STATUSES,
    OPEN_RESPONSE_STATUSES,
    SENT,
    STAGE_ORDER,
    FollowUpPolicy,
    FollowUpStage,
    Lead,
    ResponseStatus,
    appended_history,
    ascii_domain,
    email_problem,
)
from reengage.domain.send_windows import country_code, valid_zone
from reengage.domain.text import CONTROL_CHARACTERS, text_problem

# Ids derived from an email are stable across imports: the same address is the same lead.
LEAD_ID_NAMESPACE = uuid.UUID("6f1d2a1e-8a52-4c1f-9a57-1f0d3f9b2c11")
TEXT_FIELDS = {
    "id": 256,
    "name": 256,
    "email": 254,
    "company": 256,
    "company_website": 2048,
    "timezone": 64,
    "country": 64,
    "engagement_status": 64,
    "engagement_stage": 64,
    "email_confidence_level": 64,
    "follow_up_stage": 64,
    "response_status": 64,
}
TIME_FIELDS = ("last_contacted", "created_at", "updated_at")
KNOWN_FIELDS = frozenset({*TEXT_FIELDS, *TIME_FIELDS, "eligible_for_reengagement", "engagement_history"})
_DYNAMODB_DIGITS = 38  # significant digits of a DynamoDB number
_HISTORY_BYTES = 32_000  # an imported history, as JSON: far below DynamoDB's 400 KB item limit
# Fields whose unknown values are stored as given (never eligible) rather than rejected: an upstream
# system's vocabulary must not lose the lead.
_OPEN_VOCABULARY = {"engagement_status": KNOWN_ENGAGEMENT_STATUSES, "email_confidence_level": KNOWN_CONFIDENCE}
# Responses reengage learned that no import may overwrite (compliance: the address is suppressed).
_LEARNED_STOPS = frozenset({ResponseStatus.UNSUBSCRIBED, ResponseStatus.BOUNCED, ResponseStatus.COMPLAINED})
CRM_OWNED = (
    "name",
    "email",
    "company",
    "company_website",
    "timezone",
    "country",
    "engagement_status",
    "engagement_stage",
    "email_confidence_level",
)
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
    """A valid row: the fields it sets (absent or empty cells are not set), and notes worth telling."""

    row: int
    lead_id: str
    fields: dict[str, Any]
    notes: tuple[str, ...] = ()


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


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number DynamoDB can store")


def _number_problem(value: Any) -> str | None:
    """Why a number inside the history cannot be stored (DynamoDB: finite, at most 38 digits), if it cannot."""
    if isinstance(value, dict):
        return next((found for item in value.values() if (found := _number_problem(item))), None)
    if isinstance(value, list):
        return next((found for item in value if (found := _number_problem(item))), None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"holds {value}, which DynamoDB cannot store"
    # A float's repr has at most 17 significant digits; an integer may have any number.
    digits = len(str(abs(value)).rstrip("0")) if isinstance(value, int) else 0
    if isinstance(value, int) and len(str(abs(value))) > 126 or isinstance(value, float) and abs(value) >= 1e126:
        return "holds a number larger than DynamoDB stores (10^126)"
    if digits > _DYNAMODB_DIGITS:
        return f"holds a number with {digits} significant digits (DynamoDB stores at most {_DYNAMODB_DIGITS})"
    return None


def _history(value: Any) -> list[dict[str, Any]] | str:
    """The history as a list of objects, or why it cannot be imported."""
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value, parse_constant=_refuse_constant)
        except ValueError as error:
            return (
                f"must be a JSON list of objects ({error})"
                if "DynamoDB" in str(error)
                else ("must be a JSON list of objects")
            )
    if not isinstance(parsed, list) or not all(isinstance(entry, dict) for entry in parsed):
        return "must be a JSON list of objects"
    if problem := _number_problem(parsed):
        return problem
    size = len(json.dumps(parsed, ensure_ascii=False).encode())
    if size > _HISTORY_BYTES:
        return f"too large ({size:,} bytes as JSON; at most {_HISTORY_BYTES:,}): keep the newest entries"
    return parsed[-HISTORY_ENTRIES:]


def _check_website(value: str) -> str | None:
    host = re.sub(r"^https?://", "", value, flags=re.IGNORECASE).split("/")[0].split(":")[0]
    if ascii_domain(host) is None:
        return "not a web address (expected e.g. https://example.com)"
    return None


_KNOWN_VALUES: dict[str, frozenset[str]] = {
    "response_status": frozenset(status.value for status in ResponseStatus),
    "follow_up_stage": frozenset(stage.value for stage in STAGE_ORDER),
}


class _RowCheck:
    """Collects every problem of one row, and the fields it sets."""

    def __init__(self, row_number: int, row: dict[str, Any], lead_id: str) -> None:
        self.row_number = row_number
        self.row = row
        self.lead_id = lead_id
        self.errors: list[RowError] = []
        self.fields: dict[str, Any] = {}
        self.notes: list[str] = []

    def error(self, field: str, reason: str) -> None:
        self.errors.append(RowError(self.row_number, self.lead_id, field, reason))

    def failed(self, field: str) -> bool:
        return any(error.field == field for error in self.errors)

    def unknown_fields(self) -> None:
        for name in sorted(set(self.row) - KNOWN_FIELDS):
            self.error(name, f"unknown field (known: {', '.join(sorted(KNOWN_FIELDS))})")

    def text_fields(self) -> None:
        for name, cap in TEXT_FIELDS.items():
            value = self.row.get(name)
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                self.error(name, f"must be text, got {type(value).__name__}")
            elif CONTROL_CHARACTERS.search(value):
                self.error(name, "contains control characters (line breaks, tabs...)")
            elif problem := text_problem(value):
                self.error(name, problem)
            elif len(value.strip()) > cap:
                self.error(name, f"longer than {cap} characters")
            elif value.strip():
                self.fields[name] = value.strip()

    def required_and_known(self) -> None:
        email = self.fields.get("email")
        if email is None and not self.failed("email"):
            self.error("email", "required")
        elif email is not None and (problem := email_problem(email)):
            self.error("email", f"invalid address: {problem}")
        if "engagement_status" not in self.fields and not self.failed("engagement_status"):
            self.error("engagement_status", "required")
        for name, known in _KNOWN_VALUES.items():
            value = self.fields.get(name)
            if value is not None and value not in known:
                self.error(name, f"unknown value {value!r} (known: {', '.join(sorted(known))})")
        for name, known in _OPEN_VOCABULARY.items():
            value = self.fields.get(name)
            if value is not None and value not in known:
                self.notes.append(
                    f"row {self.row_number} (lead {self.lead_id}): {name}: {value!r} is not one of"
                    f" {', '.join(sorted(known))}; stored as given, the lead is not eligible"
                )
        website = self.fields.get("company_website")
        if website is not None and (problem := _check_website(website)):
            self.error("company_website", problem)
        zone = self.fields.get("timezone")
        if zone is not None and not valid_zone(zone):
            self.error("timezone", f"{zone!r} is not an IANA time zone name (e.g. Europe/Berlin, America/New_York)")
        country = self.fields.get("country")
        if country is not None and country_code(country) is None:
            self.notes.append(
                f"row {self.row_number} (lead {self.lead_id}): country: {country!r} is not a country code or"
                " name reengage knows; stored as given, the time zone is inferred without it"
            )

    def times(self, now: datetime) -> None:
        for name in TIME_FIELDS:
            value = self.row.get(name)
            if value is None or value == "":
                continue
            if not isinstance(value, str) or CONTROL_CHARACTERS.search(value):
                self.error(name, "must be an ISO-8601 time without control characters")
                continue
            try:
                moment = parse_time(value)
            except InvalidTimeError:
                self.error(name, f"not an ISO-8601 time: {value!r}")
                continue
            if moment > now + _FUTURE_TOLERANCE:
                self.error(name, f"{value} is in the future")
                continue
            self.fields[name] = format_time(moment)
        if self.fields.get("engagement_status") == SENT and "last_contacted" not in self.fields:
            if not self.failed("last_contacted"):
                self.error("last_contacted", "required when engagement_status is Sent")

    def flag_and_history(self) -> None:
        flag = self.row.get("eligible_for_reengagement")
        if flag not in (None, "") and _boolean(flag) is None:
            self.error("eligible_for_reengagement", f"must be true or false, got {flag!r}")
        history = self.row.get("engagement_history")
        if history not in (None, ""):
            parsed = _history(history)
            if isinstance(parsed, str):
                self.error("engagement_history", parsed)
            else:
                self.fields["engagement_history"] = parsed


def validate_row(row_number: int, row: dict[str, Any], now: datetime) -> ImportedLead | list[RowError]:
    """Check one row; returns what it sets, or every problem found in it.

    `eligible_for_reengagement` is checked but not imported: reengage manages that flag.
    """
    raw_id = row.get("id")
    email_value = row.get("email")
    lead_id = str(raw_id).strip() if raw_id not in (None, "") else ""
    if not lead_id and isinstance(email_value, str) and email_problem(email_value.strip()) is None:
        lead_id = derive_lead_id(email_value)
    check = _RowCheck(row_number, row, lead_id)
    if lead_id and (problem := lead_id_problem(lead_id)):
        check.error("id", problem)
    broken = [name for name, value in row.items() if _has_lone_surrogate(value)]
    for name in broken:
        # JSON may escape half of a UTF-16 pair (\ud800); no store can encode it as text.
        check.error(str(name), "contains an unpaired UTF-16 surrogate (a broken \\u escape)")
    if broken:
        return check.errors  # the other checks would print or compare text that cannot be encoded
    check.unknown_fields()
    check.text_fields()
    check.required_and_known()
    check.times(now)
    check.flag_and_history()
    if check.errors:
        return check.errors
    check.fields.pop("id", None)
    return ImportedLead(row_number, lead_id, check.fields, tuple(check.notes))


def _has_lone_surrogate(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= char <= "\udfff" for char in value)
    if depth > 32:
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k, depth + 1) or _has_lone_surrogate(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item, depth + 1) for item in value)
    return False


def _stage_index(stage: str | None) -> int:
    return STAGE_ORDER.index(FollowUpStage(stage)) + 1 if stage in STAGE_ORDER else 0


def _learned_from_file(lead: Lead, existing: Lead | None, now: datetime) -> None:
    """A response the file tells us (in place): noted in the history; a stop that suppresses the
    address (unsubscribed, bounced, complained) marks the lead suppressed, as `reengage mark` would."""
    status = lead.response_status or ""
    if status in OPEN_RESPONSE_STATUSES or (existing is not None and existing.response_status == status):
        return
    entry = {"outcome": "response", "status": status, "source": "import", "at": format_time(now)}
    lead.engagement_history = appended_history(lead.engagement_history, entry)
    if status in _LEARNED_STOPS:
        lead.suppressed = True


def merge_import(
    existing: Lead | None, imported: ImportedLead, now: datetime, policy: FollowUpPolicy
) -> tuple[Lead, list[str]]:
    """The stored lead after an import row, under the ownership rules (module docstring), and notes.

    A new lead takes the row whole (a first load may carry an earlier system's stage and history).
    A lead in flight (claimed or being sent) keeps its schedule; the sender re-checks the new
    state before sending. Other leads get their schedule derived afresh.
    """
    fields, notes = imported.fields, list(imported.notes)
    where = f"row {imported.row} (lead {imported.lead_id})"
    if existing is None:
        lead = replace(Lead(id=imported.lead_id, created_at=format_time(now)), **fields)
        _learned_from_file(lead, None, now)
    else:
        lead = replace(existing, **{name: fields[name] for name in CRM_OWNED if name in fields})
        contact, stage, status = (
            fields.get("last_contacted"),
            fields.get("follow_up_stage"),
            fields.get("response_status"),
        )
        if contact:
            # The CRM owns the first contact; after reengage's own, only a later contact counts.
            if not existing.follow_up_stage or not existing.last_contacted or contact > existing.last_contacted:
                lead.last_contacted = contact
            elif contact != existing.last_contacted:
                notes.append(f"{where}: last_contacted: kept {existing.last_contacted}, the contact reengage made")
        if stage and _stage_index(stage) > _stage_index(existing.follow_up_stage):
            lead.follow_up_stage = stage  # another system sent that stage: never backwards
        elif stage and stage != existing.follow_up_stage:
            notes.append(f"{where}: follow_up_stage: kept {existing.follow_up_stage}, the stage reengage reached")
        if status and status not in OPEN_RESPONSE_STATUSES and existing.response_status not in _LEARNED_STOPS:
            lead.response_status = status  # the CRM may stop a sequence
            _learned_from_file(lead, existing, now)
        elif status and status != existing.response_status and existing.response_status in _LEARNED_STOPS:
            notes.append(
                f"{where}: response_status: kept {existing.response_status!r}; the address is suppressed for good"
            )
        elif status in OPEN_RESPONSE_STATUSES and (existing.response_status or "") not in OPEN_RESPONSE_STATUSES:
            notes.append(
                f"{where}: response_status: kept {existing.response_status!r}; only"
                f' `reengage mark {imported.lead_id} "No Response"` resumes a stopped sequence'
            )
    lead.engagement_stage = lead.engagement_stage or DEFAULT_ENGAGEMENT_STAGE
    lead.response_status = lead.response_status or ResponseStatus.NO_RESPONSE.value
    lead.updated_at = format_time(now)
    policy.reschedule(lead)
    return lead, notes
