"""Importing leads (from a file, a CRM): every row validated first, then one conditional write per lead.

A lead is written whole or not at all; a rejected row is reported with its row number,
lead id, field and reason, and the valid rows still land.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reengage.domain.clock import format_time
from reengage.domain.imports import ImportedLead, RowError, merge_import, validate_row
from reengage.domain.leads import FollowUpPolicy
from reengage.ports import InvalidLeadDataError, Stores
from reengage.services.responses import pause_for_changed_status

_WRITE_ATTEMPTS = 3

# (row number, the row as read, or the reason it could not be read)
Row = tuple[int, dict[str, Any] | RowError]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    rejected: list[RowError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # accepted, with something worth knowing
    # Where the imported leads' time zones came from ("timezone", "country", "email domain", ...).
    zone_sources: Counter[str] = field(default_factory=Counter)

    @property
    def rejected_rows(self) -> int:
        return len({error.row for error in self.rejected})


def validated_rows(rows: Iterable[Row], now: datetime) -> tuple[list[ImportedLead], list[RowError]]:
    """Every row checked; a lead id seen twice is rejected on its second row."""
    valid: list[ImportedLead] = []
    rejected: list[RowError] = []
    first_row_of: dict[str, int] = {}
    for number, row in rows:
        if isinstance(row, RowError):
            rejected.append(row)
            continue
        result = validate_row(number, row, now)
        if isinstance(result, list):
            rejected.extend(result)
            continue
        if result.lead_id in first_row_of:
            rejected.append(RowError(number, result.lead_id, "id", f"same lead as row {first_row_of[result.lead_id]}"))
            continue
        first_row_of[result.lead_id] = number
        valid.append(result)
    return valid, rejected


def _upsert(
    stores: Stores, imported: ImportedLead, now: datetime, policy: FollowUpPolicy
) -> tuple[str, list[str], str] | RowError:
    """Write one lead (re-reading and merging again when it changes meanwhile): "created" or
    "updated" with the merge's notes and where its time zone came from, or why not.

    A file that says a lead unsubscribed, bounced or complained suppresses the address too, so the
    same person under another lead is never mailed either (the suppression list is written first:
    a failure in between leaves the address suppressed, never the lead stopped but its twin not)."""
    leads = stores.leads
    for _ in range(_WRITE_ATTEMPTS):
        try:
            existing = leads.get(imported.lead_id)
        except InvalidLeadDataError as error:
            return RowError(imported.row, imported.lead_id, "id", f"stored lead unreadable: {error}")
        merged, notes = merge_import(existing, imported, now, policy)
        if merged.suppressed and merged.email and not (existing and existing.suppressed):
            stores.suppression.suppress(merged.email, merged.response_status or "import", format_time(now))
        if leads.put(merged, previous=existing):
            pause_for_changed_status(stores, existing, merged, now, policy)
            return ("created" if existing is None else "updated"), notes, policy.zone(merged).source
    return RowError(imported.row, imported.lead_id, "id", "lead kept changing while importing; try again")


def import_rows(
    stores: Stores,
    rows: Iterable[Row],
    now: datetime,
    policy: FollowUpPolicy,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ImportReport:
    valid, rejected = validated_rows(rows, now)
    report = ImportReport(rejected=rejected)
    for done, imported in enumerate(valid, start=1):
        progress(done, len(valid))
        outcome = _upsert(stores, imported, now, policy)
        if isinstance(outcome, RowError):
            report.rejected.append(outcome)
            continue
        kind, notes, zone_source = outcome
        report.notes.extend(notes)
        report.zone_sources[zone_source] += 1
        if kind == "created":
            report.created += 1
        else:
            report.updated += 1
    report.rejected.sort(key=lambda error: error.row)
    return report
