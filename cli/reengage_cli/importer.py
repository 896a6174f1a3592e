"""`reengage import FILE`: reading .jsonl or .csv lead files into rows for services/imports.py.

Each valid row becomes one conditional PutItem (a lead is written whole or not at all);
a rejected row is reported with its row number, lead id, field and reason, and the valid
rows still land.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from reengage.domain.imports import RowError
from reengage.domain.leads import FollowUpPolicy
from reengage.ports import Stores
from reengage.services.imports import ImportReport, import_rows


class ImportFileError(ValueError):
    """The file cannot be read at all (missing, unknown extension, not text)."""


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


def import_file(
    stores: Stores,
    path: Path,
    now: datetime,
    policy: FollowUpPolicy,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ImportReport:
    return import_rows(stores, read_rows(path), now, policy, progress)
