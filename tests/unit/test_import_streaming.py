"""Imports stream: rows are validated and written chunk by chunk, never held whole, and what a
row-at-a-time import reported (row numbers, duplicates, counts) stays true across chunk boundaries."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from reengage.domain.leads import FollowUpPolicy, Lead
from reengage.services.imports import ImportProgress, Row, import_rows
from reengage_cli.importer import ImportFileError, import_file, read_rows
from reengage_cli.output import ImportProgressLine
from tests.conftest import NOW
from tests.fakes import FakeLeads, InMemoryTables
from tests.unit.test_import_hostile import csv_file, row


def test_duplicates_and_bad_rows_are_reported_by_row_number_across_chunks(tmp_path: Path) -> None:
    # Given 11 rows read 4 at a time: row 7 repeats row 2's lead (another chunk), row 6 (2nd chunk) is bad
    rows = [row(number) for number in range(1, 12)]
    rows[5] = row(6, email="not-an-address")
    rows[6] = row(7, id="lead-2", email="seven@example.com")
    heard: list[ImportProgress] = []
    store = InMemoryTables()
    # When it is imported
    report = import_rows(
        store.stores, read_rows(csv_file(tmp_path, rows)), NOW, FollowUpPolicy(), heard.append, chunk_rows=4
    )
    # Then each problem is named with its own row, the first row of a lead wins, the rest land
    assert [(error.row, error.lead_id, error.field) for error in report.rejected] == [
        (6, "lead-6", "email"),
        (7, "lead-2", "id"),
    ]
    assert report.rejected[1].reason == "same lead as row 2"
    assert (report.created, report.updated, report.rejected_rows) == (9, 0, 2)
    assert sorted(store.leads) == sorted(f"lead-{n}" for n in (1, 2, 3, 4, 5, 8, 9, 10, 11))
    assert store.leads["lead-2"].email == "person2@example.com"
    # And progress was heard chunk by chunk, ending with every row read and every lead written
    assert [progress.rows_read for progress in heard] == [4, 8, 11, 11]
    assert heard[-1] == ImportProgress(rows_read=11, written=9, rejected=2)


class _Recording(FakeLeads):
    """Notes, for each group written, its last row and how many rows the import had taken from the file."""

    def __init__(self, tables: InMemoryTables, pulled: list[int]) -> None:
        super().__init__(tables)
        self.pulled = pulled
        self.writes: list[tuple[int, int]] = []

    def put_all(self, writes: Sequence[tuple[Lead, Lead | None]]) -> list[bool]:
        last_row = max(int(lead.id.removeprefix("lead-")) for lead, _ in writes)
        self.writes.append((last_row, self.pulled[0]))
        return super().put_all(writes)


def test_rows_are_written_while_the_file_is_still_being_read(tmp_path: Path) -> None:
    # Given 5,000 rows and chunks of 500
    pulled = [0]

    def rows() -> Iterator[Row]:
        for number in range(1, 5001):
            pulled[0] = number
            yield number, row(number)

    store = InMemoryTables()
    leads = _Recording(store, pulled)
    # When they are imported
    report = import_rows(replace(store.stores, leads=leads), rows(), NOW, FollowUpPolicy(), chunk_rows=500, writers=2)
    # Then all land, and no write waited for the whole file: a group is written while at most the
    # chunk after its own has been read (two chunks in memory at once)
    assert report.created == 5000 and not report.rejected
    assert len(leads.writes) == 50
    for last_row, pulled_then in leads.writes:
        end_of_its_chunk = -(-last_row // 500) * 500
        assert pulled_then <= end_of_its_chunk + 500, (last_row, pulled_then)


def test_a_byte_that_is_not_utf8_late_in_a_long_file_refuses_it_before_any_row_is_written(tmp_path: Path) -> None:
    # Given 1,500 good rows, then one in Latin-1 (more than a chunk is read before that byte)
    path = csv_file(tmp_path, [row(number) for number in range(1, 1501)])
    good = path.read_bytes()
    path.write_bytes(good + b"lead-x,Ren\xe9e,renee@example.com,Sent,Real,2026-11-10T09:00:00Z\r\n")
    store = InMemoryTables()
    # When it is imported
    with pytest.raises(ImportFileError) as refused:
        import_file(store.stores, path, NOW, FollowUpPolicy())
    # Then the file is refused naming the byte, and nothing was written
    assert str(refused.value) == f"{path}: not UTF-8 text (invalid continuation byte at byte {len(good) + 10})"
    assert store.leads == {}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_shows_rows_read_written_and_rate_on_a_terminal_only() -> None:
    shown, piped = _Terminal(), io.StringIO()
    for stream in (shown, piped):
        line = ImportProgressLine(stream)
        line(ImportProgress(rows_read=1000, written=990, rejected=10))
        line.close()
    assert shown.getvalue().startswith("\rimporting: 1,000 rows read, 990 written, 10 problems, ")
    assert shown.getvalue().endswith(" leads/s \n")
    assert piped.getvalue() == ""
