"""Two-way sync with a CRM table (Airtable): what a pulled record does to a lead, and what is written back.

Pull: a record is an import row (through the field mapping) checked by the same rules as
`reengage import` and merged under the same ownership rules (domain/imports.py): the CRM
owns who the lead is and may stop a sequence; it never moves reengage's own state
backwards. Unlike a file, an upstream system's vocabulary never loses a lead: an unknown
response status or follow-up stage is stored as given (and is never eligible), with a note.

Push: the attributes reengage owns (stage, eligibility, and one short history line per
follow-up or response), written back only when they differ from what the record holds, so a
pull of reengage's own write changes nothing. Two attributes are shared with the CRM and
pushed only when reengage set them: the response status (a reply, an unsubscribe, a bounce,
a complaint, `reengage mark`, or a stop that suppresses the address for good) and the last
contact (once reengage made a follow-up). A push never writes back what it did not change: a
stop made in the CRM stays there until the next pull reads it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from reengage.domain.airtable_mapping import FieldMapping
from reengage.domain.clock import InvalidTimeError, format_time, parse_time
from reengage.domain.imports import ImportedLead, RowError, merge_import, validate_row
from reengage.domain.leads import STAGE_ORDER, FollowUpPolicy, Lead, ResponseStatus
from reengage.domain.text import CONTROL_CHARACTERS

_KNOWN = {
    "response_status": frozenset(status.value for status in ResponseStatus),
    "follow_up_stage": frozenset(stage.value for stage in STAGE_ORDER),
}
_VOCABULARY_CAP = 64
# History outcomes worth a line in the CRM.
_LINE_OUTCOMES = ("sent", "possibly_sent", "stopped", "rejected", "response", "bounced", "complained")
_HISTORY_LINES = 20


@dataclass(frozen=True)
class CrmRecord:
    """A CRM record as read: its id and its fields by CRM field name."""

    id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class UpdateFailure:
    """A record the CRM refused to update (deleted, unknown field...): reported, not retried."""

    record_id: str
    status: int
    reason: str

    def __str__(self) -> str:
        return f"record {self.record_id}: {self.reason}"


class CrmAccessError(Exception):
    """The CRM refuses the sync itself (bad token, unknown base or table, bad filter)."""


def validate_record(number: int, record_id: str, row: dict[str, Any], now: datetime) -> ImportedLead | list[RowError]:
    """One record checked like an import row; unknown upstream values of the open fields are kept."""
    kept: dict[str, str] = {}
    for name, known in _KNOWN.items():
        value = row.get(name)
        if (
            isinstance(value, str)
            and value.strip()
            and value.strip() not in known
            and len(value.strip()) <= _VOCABULARY_CAP
            and not CONTROL_CHARACTERS.search(value)
        ):
            kept[name] = value.strip()
    checked = validate_row(number, {name: value for name, value in row.items() if name not in kept}, now)
    if isinstance(checked, list) or not kept:
        return checked
    notes = [
        f"record {record_id} (lead {checked.lead_id}): {name}: {value!r} is not one of"
        f" {', '.join(sorted(_KNOWN[name]))}; stored as given, the lead is not eligible"
        for name, value in kept.items()
    ]
    return replace(checked, fields={**checked.fields, **kept}, notes=(*checked.notes, *notes))


def described(error: RowError, mapping: FieldMapping, record_id: str) -> RowError:
    """An import error in the CRM's words: the Airtable field and the record id."""
    field = mapping.fields.get(error.field)
    label = f"{field} ({error.field})" if field and field != error.field else error.field
    return replace(error, lead_id=error.lead_id or record_id, field=label)


def merge_pulled(
    existing: Lead | None, imported: ImportedLead, now: datetime, policy: FollowUpPolicy, contact_cell: Any = None
) -> tuple[Lead, list[str], bool]:
    """The lead after a pulled record (import ownership rules), its notes, and whether anything changed.

    `contact_cell` is the record's last-contacted cell as Airtable holds it: the lead's own
    time, cut to Airtable's precision (milliseconds, or the day), is the same contact."""
    if existing is not None and existing.last_contacted and "last_contacted" in imported.fields:
        cell = contact_cell if contact_cell is not None else imported.fields["last_contacted"]
        if same_instant(existing.last_contacted, cell):
            imported = replace(imported, fields={**imported.fields, "last_contacted": existing.last_contacted})
    merged, notes = merge_import(existing, imported, now, policy)
    stage = imported.fields.get("follow_up_stage")
    if existing is not None and stage and stage not in _KNOWN["follow_up_stage"]:
        # Another system's stage reengage does not know: stored as given (never eligible), not a conflict.
        merged.follow_up_stage = stage
        notes = [note for note in notes if ": follow_up_stage: kept " not in note]
        policy.reschedule(merged)
    if existing is None:
        return merged, notes, True
    changed = replace(merged, updated_at=None, version=0) != replace(existing, updated_at=None, version=0)
    return merged, notes, changed


def history_lines(lead: Lead) -> str:
    """One short line per follow-up and response, newest last (the newest 20)."""
    lines = []
    for entry in lead.engagement_history:
        outcome = str(entry.get("outcome", ""))
        if outcome not in _LINE_OUTCOMES:
            continue
        at = str(entry.get("at", ""))
        try:
            at = parse_time(at).strftime("%Y-%m-%d %H:%M UTC")
        except InvalidTimeError:
            pass
        if outcome == "response":
            what = f"response: {entry.get('status', '')} ({entry.get('source', '')})"
        else:
            what = f"{entry.get('stage', '')} {outcome}"
            if entry.get("reason"):
                what += f": {entry['reason']}"
            elif entry.get("generator"):
                what += f" ({entry['generator']})"
        lines.append(f"{at} {what}".strip())
    return "\n".join(lines[-_HISTORY_LINES:])


# Where a response came from when reengage only learned it (a file or the CRM): not reengage's to push.
CRM_SOURCES = frozenset({"import", "crm"})
# Stops that suppress the address for good: reengage never moves from them, whoever set them.
_FINAL_STOPS = frozenset(
    {ResponseStatus.UNSUBSCRIBED.value, ResponseStatus.BOUNCED.value, ResponseStatus.COMPLAINED.value}
)


def response_set_by_reengage(lead: Lead) -> bool:
    """Whether the lead's response status is reengage's own word (its newest response entry came
    from a reply, an unsubscribe, a bounce, a complaint or `reengage mark`), or a final stop."""
    if lead.response_status in _FINAL_STOPS:
        return True
    for entry in reversed(lead.engagement_history):
        if entry.get("outcome") == "response":
            return entry.get("status") == lead.response_status and entry.get("source") not in CRM_SOURCES
    return False


def pushed_values(lead: Lead) -> dict[str, Any]:
    """What reengage writes back, by lead attribute: only what it owns or set itself."""
    values: dict[str, Any] = {"follow_up_stage": lead.follow_up_stage or ""}
    if response_set_by_reengage(lead):
        values["response_status"] = lead.response_status or ResponseStatus.NO_RESPONSE.value
    values["eligible_for_reengagement"] = bool(lead.eligible_for_reengagement)
    if lead.follow_up_stage:  # the CRM owns the last contact until reengage's first follow-up
        values["last_contacted"] = lead.last_contacted or ""
    values["reengage_history"] = history_lines(lead)
    return values


def _changed_values(old: Lead, new: Lead) -> dict[str, Any]:
    before = pushed_values(old)
    return {name: value for name, value in pushed_values(new).items() if before.get(name) != value}


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _milliseconds(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def same_instant(ours: str, theirs: Any) -> bool:
    """Whether a time Airtable holds is ours at Airtable's precision: a date-time field keeps
    milliseconds, a date field the day."""
    if not isinstance(theirs, str):
        return False
    try:
        at = parse_time(ours)
        if _DATE_ONLY.fullmatch(theirs.strip()):
            return at.date().isoformat() == theirs.strip()
        return _milliseconds(at) == _milliseconds(parse_time(theirs))
    except InvalidTimeError:
        return False


def _same(ours: Any, theirs: Any) -> bool:
    # Airtable leaves out empty cells and unticked checkboxes.
    if isinstance(ours, bool):
        return ours == bool(theirs)
    if ours in ("", None):
        return theirs in ("", None)
    if isinstance(ours, str) and isinstance(theirs, str) and ours != theirs:
        return same_instant(ours, theirs) or ours.strip() == theirs.strip()
    return bool(ours == theirs)


def push_fields(
    mapping: FieldMapping, lead: Lead, record_fields: Mapping[str, Any] | None, previous: Lead | None = None
) -> dict[str, Any]:
    """The fields to write on the lead's record: those that differ from `record_fields` (None: all),
    and with `previous` (the lead before a change), only those that change made."""
    wanted = mapping.pushed(_changed_values(previous, lead) if previous is not None else pushed_values(lead))
    if record_fields is None:
        return wanted
    return {name: value for name, value in wanted.items() if not _same(value, record_fields.get(name))}


def pushed_changed(old: Lead | None, new: Lead) -> bool:
    """Whether a change to a lead touches what is written back (a new lead has nothing of reengage's yet)."""
    return old is not None and bool(_changed_values(old, new))


# Records changed this long before a sync started are read again by the next one: Airtable's clock
# and ours may disagree a little, and reading a record twice changes nothing.
CURSOR_OVERLAP = timedelta(minutes=2)


def next_cursor(started_at: datetime) -> str:
    """The cursor a successful pull leaves: records modified after it are read next time."""
    return format_time(started_at - CURSOR_OVERLAP)
