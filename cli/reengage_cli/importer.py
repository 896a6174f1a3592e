"""`reengage import FILE`: upsert leads from .jsonl or .csv, every row validated first.

Each valid row is one conditional PutItem (a lead is written whole or not at all); a
rejected row is reported with its row number, lead id, field and reason, and the
valid rows still land.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from reengage.lead_store import DynamoLeadStore
from reengage.ports import InvalidLeadDataError
from reengage.validation import ImportedLead, RowError, merge_import, validate_row

_WRITE_ATTEMPTS = 3


class ImportFileError(ValueError):
    """The file cannot be read at all (missing, unknown extension, not text)."""


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    rejected: list[RowError] = field(default_factory=list)

    @property
    def rejected_rows(self) -> int:
        return len({error.row for error in self.rejected})


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(row number, row) pairs; data rows are numbered from 1 (a CSV header is not a row)."""
    suffix = path.suffix.lower()
    if suffix not in {".jsonl", ".csv"}:
        raise ImportFileError(f"{path}: unknown file type {suffix or '(none)'}; use .jsonl or .csv")
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise ImportFileError(f"{path}: {error.strerror}") from error
    with handle:
        try:
            if suffix == ".csv":
                reader = csv.DictReader(handle)
                if not reader.fieldnames:
                    raise ImportFileError(f"{path}: empty file (a header row is needed)")
                for number, row in enumerate(reader, start=1):
                    if None in row:
                        yield number, RowError(number, "", "row", "more cells than header columns")
                        continue
                    yield number, {key.strip(): value for key, value in row.items() if key is not None}
                return
            number = 0
            for line in handle:
                if not line.strip():
                    continue
                number += 1
                try:
                    parsed = json.loads(line)
                except ValueError as error:
                    yield number, RowError(number, "", "row", f"not valid JSON: {error}")
                    continue
                if not isinstance(parsed, dict):
                    yield number, RowError(number, "", "row", "each line must be a JSON object")
                    continue
                yield number, parsed
        except UnicodeDecodeError as error:
            raise ImportFileError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error


def validated_rows(path: Path, now: datetime) -> tuple[list[ImportedLead], list[RowError]]:
    """Every row checked; a lead id seen twice in one file is rejected on its second row."""
    valid: list[ImportedLead] = []
    rejected: list[RowError] = []
    first_row_of: dict[str, int] = {}
    for number, row in read_rows(path):
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


def import_leads(
    store: DynamoLeadStore,
    path: Path,
    now: datetime,
    max_followups: int,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ImportReport:
    valid, rejected = validated_rows(path, now)
    report = ImportReport(rejected=rejected)
    for done, imported in enumerate(valid, start=1):
        progress(done, len(valid))
        for _ in range(_WRITE_ATTEMPTS):
            try:
                existing = store.get(imported.lead_id)
            except InvalidLeadDataError as error:
                report.rejected.append(
                    RowError(imported.row, imported.lead_id, "id", f"stored lead unreadable: {error}")
                )
                break
            if store.put(merge_import(existing, imported, now, max_followups), previous=existing):
                if existing is None:
                    report.created += 1
                else:
                    report.updated += 1
                break
        else:
            report.rejected.append(
                RowError(imported.row, imported.lead_id, "id", "lead kept changing while importing; try again")
            )
    report.rejected.sort(key=lambda error: error.row)
    return report
