"""`reengage import FILE`: reading .jsonl or .csv lead files into rows for services/imports.py.

The file is read one row at a time (never held whole); each valid row becomes one lead written
by a conditional write (whole or not at all); a rejected row is reported with its row number,
lead id, field and reason, and the valid rows still land.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from reengage.domain.imports import KNOWN_FIELDS, RowError, derive_lead_id
from reengage.domain.leads import FollowUpPolicy, email_problem
from reengage.ports import Stores
from reengage.services.imports import ImportProgress, ImportReport, import_rows


class ImportFileError(ValueError):
    """The file cannot be read at all (missing, unknown extension, not text)."""


MAX_CELL = 65_536  # characters in one CSV cell or JSON value read (the largest field, a history, is 32 KB)
MAX_JSON_DEPTH = 16  # nesting of one JSONL line (a history is a list of objects: depth 3)
_CSV_READ_LIMIT = 2**31 - 1  # the csv module's own limit, raised so one big cell cannot abort the file
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(line: str) -> int:
    """How deeply a JSON text nests (strings skipped), counted without parsing it."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub("", line)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _row_id(row: dict[str, Any]) -> str:
    """The lead id a problem row is reported under: its id, else the one derived from its email."""
    raw_id, address = row.get("id"), row.get("email")
    if isinstance(raw_id, str) and raw_id.strip() and len(raw_id) <= MAX_CELL:
        return raw_id.strip()[:256]
    if isinstance(address, str) and len(address) <= 254 and email_problem(address.strip()) is None:
        return derive_lead_id(address)
    return ""


def _header(path: Path, fieldnames: list[str]) -> list[str]:
    """The CSV columns, stripped; ImportFileError naming a duplicated, unnamed or unknown column."""
    columns = [name.strip() for name in fieldnames]
    seen: dict[str, int] = {}
    for position, name in enumerate(columns, start=1):
        if not name:
            raise ImportFileError(f"{path}: column {position} has no name")
        if name in seen:
            raise ImportFileError(f"{path}: column {name!r} appears twice (columns {seen[name]} and {position})")
        if name not in KNOWN_FIELDS:
            raise ImportFileError(
                f"{path}: unknown column {name!r} (column {position}; known: {', '.join(sorted(KNOWN_FIELDS))})"
            )
        seen[name] = position
    return columns


def _csv_rows(path: Path, handle: Any) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    previous = csv.field_size_limit(_CSV_READ_LIMIT)
    try:
        reader = csv.reader(handle)
        fieldnames = next(reader, None)
        if not fieldnames:
            raise ImportFileError(f"{path}: empty file (a header row is needed)")
        columns = _header(path, fieldnames)
        for number, cells in enumerate(reader, start=1):
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            if len(cells) > len(columns):
                yield number, RowError(number, "", "row", "more cells than header columns")
                continue
            row = dict(zip(columns, cells, strict=False))
            if swallowed := _swallowed_rows(number, row, len(columns)):
                yield number, swallowed
                continue
            oversized = next((name for name, value in row.items() if len(value) > MAX_CELL), None)
            if oversized is not None:
                reason = f"{len(row[oversized]):,} characters; a cell holds at most {MAX_CELL:,}"
                yield number, RowError(number, _row_id(row), oversized, reason)
                continue
            yield number, row
    finally:
        csv.field_size_limit(previous)


def _swallowed_rows(number: int, row: dict[str, str], width: int) -> RowError | None:
    """A cell whose quote was never closed takes the following lines in as its text: those rows
    would vanish silently. Named instead, by their first cells, so they can be fixed and re-imported."""
    for name, value in row.items():
        swallowed = [line for line in value.split("\n")[1:] if line.count(",") >= width - 1]
        if swallowed:
            first_cells = ", ".join(line.split(",", 1)[0].strip('"') for line in swallowed[:5])
            more = f" and {len(swallowed) - 5} more" if len(swallowed) > 5 else ""
            reason = (
                f"an unterminated quote swallowed {len(swallowed)} following line(s) that look like rows "
                f"({first_cells}{more}); close the quote and import the file again"
            )
            return RowError(number, _row_id(row), name, reason)
    return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if duplicate := next((key for key in keys if keys.count(key) > 1), None):
        raise _DuplicateKeyError(duplicate)
    return dict(pairs)


class _DuplicateKeyError(ValueError):
    pass


def _jsonl_rows(handle: Any) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    number = 0
    for line in handle:
        if not line.strip():
            continue
        number += 1
        if (depth := json_depth(line)) > MAX_JSON_DEPTH:
            yield number, RowError(number, "", "row", f"JSON nested {depth} deep; at most {MAX_JSON_DEPTH}")
            continue
        try:
            parsed = json.loads(line, object_pairs_hook=_unique_keys)
        except _DuplicateKeyError as error:
            yield number, RowError(number, "", str(error), "appears twice in the object")
            continue
        except ValueError as error:
            yield number, RowError(number, "", "row", f"not valid JSON: {error}")
            continue
        if not isinstance(parsed, dict):
            yield number, RowError(number, "", "row", "each line must be a JSON object")
            continue
        oversized = next((k for k, v in parsed.items() if isinstance(v, str) and len(v) > MAX_CELL), None)
        if oversized is not None:
            reason = f"{len(parsed[oversized]):,} characters; a value holds at most {MAX_CELL:,}"
            yield number, RowError(number, _row_id(parsed), oversized, reason)
            continue
        yield number, parsed


def _refuse_unless_utf8(path: Path) -> None:
    """ImportFileError naming the first byte that is not UTF-8, found before any row is read: rows
    are written while the file is still being read, so a file refused for its encoding must be
    refused before the first of them. One pass in blocks: memory stays flat."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as raw:
        while True:
            block = raw.read(1 << 20)
            start = offset - len(decoder.getstate()[0])  # bytes held back from the last block come first
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                raise ImportFileError(
                    f"{path}: not UTF-8 text ({error.reason} at byte {start + error.start})"
                ) from error
            if not block:
                return
            offset += len(block)


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(row number, row) pairs; data rows are numbered from 1 (a CSV header is not a row).

    Limits are enforced while reading, per row: a cell over MAX_CELL characters or a JSON line
    nested deeper than MAX_JSON_DEPTH is that row's error, and the rows after it are still read.
    A CSV header with a duplicated, unnamed or unknown column, or a byte that is not UTF-8
    anywhere in the file, refuses the file before any row.
    """
    suffix = path.suffix.lower()
    if suffix not in {".jsonl", ".csv"}:
        raise ImportFileError(f"{path}: unknown file type {suffix or '(none)'}; use .jsonl or .csv")
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise ImportFileError(f"{path}: {error.strerror}") from error
    with handle:
        _refuse_unless_utf8(path)
        try:
            yield from _csv_rows(path, handle) if suffix == ".csv" else _jsonl_rows(handle)
        except UnicodeDecodeError as error:
            raise ImportFileError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error


def import_file(
    stores: Stores,
    path: Path,
    now: datetime,
    policy: FollowUpPolicy,
    progress: Callable[[ImportProgress], None] = lambda progress: None,
) -> ImportReport:
    return import_rows(stores, read_rows(path), now, policy, progress)
