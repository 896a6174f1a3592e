"""The CRM sync (Airtable) and the CRM events: pull, push, and what a leads-table change publishes.

Pull: the records changed since the last successful pull, each checked like an import row
and merged under the import's ownership rules (domain/crm_sync.py), one conditional write
per lead that changed. A record that tries to move reengage's state back is answered by
writing reengage's values onto it. The cursor moves only after a whole pull succeeded.

Push: what reengage owns, written back to the leads' records (from the table's stream, or
all at once from the CLI). A record Airtable refuses is reported and counted, not retried.

Events: every leads-table change gives its CRM events (domain/crm_events.py), published at
least once, before anything is pushed; neither ever holds up a send (a separate function
reads the stream).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from reengage.domain.airtable_mapping import FieldMapping
from reengage.domain.clock import format_time
from reengage.domain.crm_events import CrmEvent, events_for_change
from reengage.domain.crm_sync import (
    CURSOR_OVERLAP,
    CrmRecord,
    UpdateFailure,
    described,
    merge_pulled,
    push_fields,
    pushed_changed,
    validate_record,
)
from reengage.domain.imports import ImportedLead, RowError
from reengage.domain.leads import FollowUpPolicy, Lead
from reengage.ports import CrmTable, EventBus, InvalidLeadDataError, Stores, SyncState
from reengage.services.responses import pause_for_changed_status

logger = logging.getLogger(__name__)

_WRITE_ATTEMPTS = 3
_UPDATE_BATCH = 10


@dataclass
class SyncReport:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pushed: int = 0  # records written back
    push_failures: list[UpdateFailure] = field(default_factory=list)
    unlinked: int = 0  # changed leads with no CRM record
    cursor: str | None = None
    dry_run: bool = False
    config_error: str | None = None
    deleted: list[str] = field(default_factory=list)  # linked records no longer in the table (a full read)


def _lead_id(
    record: CrmRecord, row: dict[str, Any], links: Mapping[str, str], record_of: Mapping[str, str], stores: Stores
) -> tuple[str, RowError | None]:
    """Which lead a record is (and why it cannot be one: None if it can): its lead id column, the
    lead it was linked to, a lead with its address (imported before the CRM was connected), else
    a new lead keyed by the record id. A lead linked to another record is never taken over."""
    raw = row.get("id")
    if raw not in (None, "", record.id):
        if not isinstance(raw, str) or not raw.strip():
            return record.id, RowError(0, record.id, "id", f"must be plain text naming a lead, got {raw!r}")
        owner = record_of.get(raw.strip())
        if owner not in (None, record.id):
            return record.id, RowError(
                0, record.id, "id", f"lead {raw.strip()} is already record {owner}'s; left as it is"
            )
        return raw.strip(), None
    if record.id in links:
        return links[record.id], None
    email = row.get("email")
    if isinstance(email, str) and email.strip():
        found = stores.leads.find_by_email(email.strip())
        if found:
            owner = record_of.get(found)
            if owner not in (None, record.id):
                return record.id, RowError(
                    0, record.id, "email", f"same address as record {owner} (lead {found}); not merged"
                )
            return found, None
    return record.id, None


def _upsert(
    stores: Stores, checked: ImportedLead, now: datetime, policy: FollowUpPolicy, dry_run: bool, contact_cell: Any
) -> tuple[str, Lead, list[str], bool] | RowError:
    """("created" | "updated" | "unchanged", the lead, notes, whether the CRM tried to move reengage back)."""
    for _ in range(_WRITE_ATTEMPTS):
        try:
            existing = stores.leads.get(checked.lead_id)
        except InvalidLeadDataError as error:
            return RowError(checked.row, checked.lead_id, "id", f"stored lead unreadable: {error}")
        merged, notes, changed = merge_pulled(existing, checked, now, policy, contact_cell)
        conflict = existing is not None and any(": kept " in note for note in notes)
        kind = "created" if existing is None else "updated" if changed else "unchanged"
        if dry_run or not changed:
            return kind, merged if changed else existing or merged, notes, conflict
        if merged.suppressed and merged.email and not (existing and existing.suppressed):
            stores.suppression.suppress(merged.email, merged.response_status or "crm", format_time(now))
        if stores.leads.put(merged, previous=existing):
            pause_for_changed_status(stores, existing, merged, now, policy)
            return kind, merged, notes, conflict
    return RowError(checked.row, checked.lead_id, "id", "lead kept changing while syncing; try again")


def pull(
    stores: Stores,
    table: CrmTable,
    state: SyncState,
    mapping: FieldMapping,
    now: datetime,
    policy: FollowUpPolicy,
    dry_run: bool = False,
    full: bool = False,
    overlap: timedelta = CURSOR_OVERLAP,
) -> SyncReport:
    """Upsert the records changed since the last pull (all of them with `full`)."""
    report = SyncReport(dry_run=dry_run)
    cursor = None if full else state.cursor()
    seen: set[str] = set()
    links = state.links()
    record_of = {lead_id: record_id for record_id, lead_id in links.items()}
    first_record_of: dict[str, str] = {}
    corrections: list[tuple[str, dict[str, Any]]] = []
    for page in table.changed_since(cursor):
        new_links: dict[str, str] = {}
        for record in page:
            report.read += 1
            seen.add(record.id)
            row = mapping.row(record.id, record.fields)
            lead_id, refused = _lead_id(record, row, links, record_of, stores)
            row["id"] = lead_id
            checked = (
                [replace(refused, row=report.read)] if refused else validate_record(report.read, record.id, row, now)
            )
            if isinstance(checked, list):
                report.rejected.extend(described(error, mapping, record.id) for error in checked)
                continue
            if lead_id in first_record_of:
                problem = f"same lead as record {first_record_of[lead_id]}"
                report.rejected.append(RowError(report.read, lead_id, mapping.fields.get("id", "id"), problem))
                continue
            first_record_of[lead_id] = record.id
            outcome = _upsert(stores, checked, now, policy, dry_run, row.get("last_contacted"))
            if isinstance(outcome, RowError):
                report.rejected.append(outcome)
                continue
            kind, lead, notes, conflict = outcome
            setattr(report, kind, getattr(report, kind) + 1)
            report.notes.extend(notes)
            if links.get(record.id) != lead_id:
                new_links[record.id] = lead_id
            if conflict and (fields := push_fields(mapping, lead, record.fields)):
                corrections.append((record.id, fields))  # reengage's values back onto the record
        if new_links and not dry_run:
            state.link(new_links)
            links = {**links, **new_links}
            record_of.update({lead_id: record_id for record_id, lead_id in new_links.items()})
        if len(corrections) >= _UPDATE_BATCH and not dry_run:
            _write(table, corrections, report)
            corrections = []
    if corrections and not dry_run:
        _write(table, corrections, report)
    report.deleted = _deleted(links, seen) if cursor is None else []
    if not dry_run:
        report.cursor = format_time(now - overlap)
        state.save_cursor(report.cursor, format_time(now))
    return report


def _deleted(links: Mapping[str, str], seen: set[str]) -> list[str]:
    """The linked records a full read did not find: deleted in the CRM (their leads are left as they are)."""
    return [
        f"record {record_id} (lead {lead_id}): deleted in Airtable; the lead is left as it is"
        for record_id, lead_id in sorted(links.items())
        if record_id not in seen
    ]


def _write(table: CrmTable, updates: Sequence[tuple[str, dict[str, Any]]], report: SyncReport) -> None:
    failures = table.update(updates)
    report.push_failures.extend(failures)
    report.pushed += len(updates) - len(failures)
    for failure in failures:
        logger.warning(
            f"CRM record {failure.record_id} not updated: {failure.reason}",
            extra={"record": failure.record_id, "reason": failure.reason},
        )


def push_leads(
    table: CrmTable,
    state: SyncState,
    mapping: FieldMapping,
    leads: Sequence[Lead],
    dry_run: bool = False,
    previous: Mapping[str, Lead] | None = None,
) -> SyncReport:
    """Write reengage's values of these leads to their records (leads without a record are counted);
    with `previous` (each lead before the change), only what the change made."""
    report = SyncReport(dry_run=dry_run)
    record_of = state.records_of(lead.id for lead in leads)
    before = previous or {}
    updates = [
        (record_of[lead.id], fields)
        for lead in leads
        if lead.id in record_of and (fields := push_fields(mapping, lead, None, previous=before.get(lead.id)))
    ]
    report.unlinked = sum(lead.id not in record_of for lead in leads)
    if dry_run:
        report.pushed = len(updates)
    elif updates:
        _write(table, updates, report)
    return report


def push_all(
    stores: Stores, table: CrmTable, state: SyncState, mapping: FieldMapping, dry_run: bool = False
) -> SyncReport:
    """Every linked record brought in line with its lead (only the records that differ are written)."""
    report = SyncReport(dry_run=dry_run)
    links = state.links()
    updates: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for page in table.changed_since(None):
        for record in page:
            report.read += 1
            seen.add(record.id)
            lead_id = links.get(record.id)
            lead = stores.leads.get(lead_id) if lead_id else None
            if lead is None:
                report.unlinked += 1
                continue
            if fields := push_fields(mapping, lead, record.fields):
                updates.append((record.id, fields))
    report.deleted = _deleted(links, seen)
    if dry_run:
        report.pushed = len(updates)
    elif updates:
        _write(table, updates, report)
    return report


ReadLead = Callable[[dict[str, Any]], Lead]
Push = Callable[[Sequence[Lead], Mapping[str, Lead]], SyncReport]  # the new images, the old ones by lead id


@dataclass
class StreamOutcome:
    events: int = 0
    pushed: int = 0
    push_failures: list[UpdateFailure] = field(default_factory=list)
    config_error: str | None = None  # the Airtable configuration could not be used: nothing pushed
    malformed: int = 0  # records that are not stream records (counted rejections, never retried)


Parts = tuple[CrmTable, SyncState, FieldMapping]


def configured_push(load: Callable[[], Parts | None]) -> Push:
    """A stream push that loads the Airtable configuration only when there is something to push,
    after the events went out: a bad mapping or an unreadable token is the push's problem
    (`SyncReport.config_error`), never the events'."""

    def push(leads: Sequence[Lead], before: Mapping[str, Lead]) -> SyncReport:
        try:
            parts = load()
        except Exception as error:  # any configuration failure: reported, the events are already out
            return SyncReport(config_error=f"Airtable configuration unusable: {type(error).__name__}: {error}")
        if parts is None:
            return SyncReport()
        table, state, mapping = parts
        return push_leads(table, state, mapping, leads, previous=before)

    return push


def _image(read_lead: ReadLead, image: Any) -> Lead | None:
    if not image or not isinstance(image, Mapping):
        return None
    try:
        return read_lead(dict(image))
    except InvalidLeadDataError:
        return None  # set aside by the sender; nothing to tell a CRM


def lead_changes(
    records: Iterable[Mapping[str, Any]],
    read_lead: ReadLead,
    policy: FollowUpPolicy,
    bus: EventBus | None,
    push: Push | None,
) -> StreamOutcome:
    """A batch of leads-table stream records: publish their events, then push what changed."""
    events: list[CrmEvent] = []
    changed: dict[str, Lead] = {}
    before: dict[str, Lead] = {}
    malformed = 0
    for record in records:
        change = record.get("dynamodb", {}) if isinstance(record, Mapping) else None
        if not isinstance(change, Mapping):
            malformed += 1
            continue
        old, new = _image(read_lead, change.get("OldImage")), _image(read_lead, change.get("NewImage"))
        if new is None and old is None:
            continue
        events.extend(events_for_change(old, new, policy))
        if new is not None and old is not None and pushed_changed(old, new):
            changed[new.id] = new  # in stream order: the newest image wins
            before.setdefault(new.id, old)  # and the oldest is what the batch changed
    outcome = StreamOutcome(events=bus.publish(events) if events and bus is not None else 0, malformed=malformed)
    if push is not None and changed:
        report = push(list(changed.values()), before)
        outcome.pushed, outcome.push_failures = report.pushed, report.push_failures
        outcome.config_error = report.config_error
    return outcome
