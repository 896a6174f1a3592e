"""Importing leads (from a file, a CRM): rows validated and written chunk by chunk, each lead by a
conditional write.

A lead is written whole or not at all; a rejected row is reported with its row number,
lead id, field and reason, and the valid rows still land.

The rows stream through: CHUNK_ROWS at a time are validated, then written in groups of
WRITE_GROUP (one consistent BatchGetItem for the group, its merges, one TransactWriteItems)
by WRITERS threads sharing the process's one DynamoDB client, while the next chunk is read.
Memory stays flat however long the file; what grows is one lead id per row (to refuse a lead
seen twice) and the report's errors and notes. A lead that changed between the group's read
and its write is read again and merged again on its own, as a single-lead import would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from reengage.domain.clock import format_time
from reengage.domain.imports import ImportedLead, RowError, merge_import, validate_row
from reengage.domain.leads import FollowUpPolicy, Lead
from reengage.ports import InvalidLeadDataError, Stores, UnreadableLead
from reengage.services.responses import pause_for_changed_status

_WRITE_ATTEMPTS = 3
CHUNK_ROWS = 1000  # rows validated and in flight at once
WRITE_GROUP = 100  # leads read by one BatchGetItem and written by one transaction (DynamoDB's limits)
WRITERS = 2  # groups in flight: one written while the next is prepared (benchmarks/import_speed.py)

# (row number, the row as read, or the reason it could not be read)
Row = tuple[int, dict[str, Any] | RowError]
# A lead written: "created" or "updated", the merge's notes, where its time zone came from.
Written = tuple[str, list[str], str]


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


@dataclass(frozen=True)
class ImportProgress:
    rows_read: int
    written: int  # leads created or updated so far
    rejected: int  # problems found so far (a row may have several)


def _validated(
    chunk: Iterable[Row], now: datetime, first_row_of: dict[str, int], rejected: list[RowError]
) -> list[ImportedLead]:
    """The chunk's valid rows; the others' problems go to `rejected`. A lead id seen before, in this
    chunk or an earlier one (`first_row_of`), is rejected on its second row."""
    valid: list[ImportedLead] = []
    for number, row in chunk:
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
    return valid


def _unreadable(imported: ImportedLead, problem: str) -> RowError:
    return RowError(imported.row, imported.lead_id, "id", f"stored lead unreadable: {problem}")


def _suppress_first(stores: Stores, existing: Lead | None, merged: Lead, now: datetime) -> None:
    """A file that says a lead unsubscribed, bounced or complained suppresses the address too, so the
    same person under another lead is never mailed either. Written before the lead: a failure in
    between leaves the address suppressed, never the lead stopped but its twin not."""
    if merged.suppressed and merged.email and not (existing and existing.suppressed):
        stores.suppression.suppress(merged.email, merged.response_status or "import", format_time(now))


def _written(
    stores: Stores, existing: Lead | None, merged: Lead, notes: list[str], now: datetime, policy: FollowUpPolicy
) -> Written:
    pause_for_changed_status(stores, existing, merged, now, policy)
    return ("created" if existing is None else "updated"), notes, policy.zone(merged).source


def _upsert(stores: Stores, imported: ImportedLead, now: datetime, policy: FollowUpPolicy) -> Written | RowError:
    """Write one lead, reading it and merging again when it changes meanwhile, or why not."""
    for _ in range(_WRITE_ATTEMPTS):
        try:
            existing = stores.leads.get(imported.lead_id)
        except InvalidLeadDataError as error:
            return _unreadable(imported, str(error))
        merged, notes = merge_import(existing, imported, now, policy)
        _suppress_first(stores, existing, merged, now)
        if stores.leads.put(merged, previous=existing):
            return _written(stores, existing, merged, notes, now, policy)
    return RowError(imported.row, imported.lead_id, "id", "lead kept changing while importing; try again")


def _write_group(
    stores: Stores, group: list[ImportedLead], now: datetime, policy: FollowUpPolicy
) -> list[Written | RowError]:
    """Read the group's stored leads at once, merge each, write them together; a lead that changed
    since the read (its write refused) goes through `_upsert` alone. Outcomes in the group's order."""
    stored = stores.leads.get_many([imported.lead_id for imported in group])
    outcomes: list[Written | RowError | None] = [None] * len(group)
    merges: list[tuple[int, Lead | None, Lead, list[str]]] = []
    for position, imported in enumerate(group):
        existing = stored.get(imported.lead_id)
        if isinstance(existing, UnreadableLead):
            outcomes[position] = _unreadable(imported, f"lead {imported.lead_id!r}: {existing.problem}")
            continue
        merged, notes = merge_import(existing, imported, now, policy)
        _suppress_first(stores, existing, merged, now)
        merges.append((position, existing, merged, notes))
    written = stores.leads.put_all([(merged, existing) for _, existing, merged, _ in merges])
    for (position, existing, merged, notes), landed in zip(merges, written, strict=True):
        if landed:
            outcomes[position] = _written(stores, existing, merged, notes, now, policy)
        else:
            outcomes[position] = _upsert(stores, group[position], now, policy)
    return [outcome for outcome in outcomes if outcome is not None]


def _chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _tally(report: ImportReport, outcomes: list[Written | RowError]) -> None:
    for outcome in outcomes:
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


def import_rows(
    stores: Stores,
    rows: Iterable[Row],
    now: datetime,
    policy: FollowUpPolicy,
    progress: Callable[[ImportProgress], None] = lambda progress: None,
    chunk_rows: int = CHUNK_ROWS,
    writers: int = WRITERS,
) -> ImportReport:
    """Validate and write `rows` as they come (module docstring). `progress` hears after every chunk."""
    report = ImportReport()
    first_row_of: dict[str, int] = {}  # one entry per lead id in the file: O(ids), the only per-row state kept
    rows_read = 0
    in_flight: list[Future[list[Written | RowError]]] = []

    def tell() -> None:
        progress(ImportProgress(rows_read, report.created + report.updated, len(report.rejected)))

    pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="import")
    try:
        for chunk in _chunks(rows, chunk_rows):
            rows_read += len(chunk)
            valid = _validated(chunk, now, first_row_of, report.rejected)
            submitted = [
                pool.submit(_write_group, stores, valid[start : start + WRITE_GROUP], now, policy)
                for start in range(0, len(valid), WRITE_GROUP)
            ]
            # The previous chunk's writes finish while this one was read and validated: at most two in flight.
            for future in in_flight:
                _tally(report, future.result())
            in_flight = submitted
            tell()
        for future in in_flight:
            _tally(report, future.result())
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # groups already writing finish (each lead whole)
        raise
    pool.shutdown(wait=True)
    tell()
    report.rejected.sort(key=lambda error: error.row)
    return report
