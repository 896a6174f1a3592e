"""A local Airtable-compatible HTTP server (the Web API's record endpoints), for tests and the demo.

What it does as Airtable does (https://airtable.com/developers/web/api): list records with
`pageSize` (at most 100) and `offset` paging and a `filterByFormula` on the last-modified
time (`IS_AFTER(LAST_MODIFIED_TIME(), '<ISO time>')`), also as `POST .../listRecords`;
update up to 10 records per `PATCH` (all or none: 422 `UNKNOWN_FIELD_NAME` for a field the
table does not have, 404 for a deleted record); 429 `RATE_LIMIT_REACHED` when more than 5
requests reach a base within one second; 401 without the bearer token. Empty cells and
unticked checkboxes are left out of a record's fields, as Airtable does; a date-time field
keeps milliseconds (UTC), a date field the day (`create_table(dates=...)`).

`pyairtable` talks to it through its normal `endpoint_url` setting. On 127.0.0.1, a free
port, stopped by whoever started it.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reengage_cli.emulator.server import LoopbackServer

RATE_LIMIT = 5  # requests per second per base
MAX_PAGE_SIZE = 100
MAX_BATCH = 10
_AFTER = re.compile(r"^\s*IS_AFTER\(\s*LAST_MODIFIED_TIME\(\)\s*,\s*'([^']+)'\s*\)\s*$")


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class _Record:
    id: str
    created: str
    modified: float  # time.time() of the last change
    fields: dict[str, Any]

    def body(self) -> dict[str, Any]:
        visible = {name: value for name, value in self.fields.items() if value not in ("", None, False, [])}
        return {"id": self.id, "createdTime": self.created, "fields": visible}


def _as_stored(kind: str, value: Any) -> Any:
    """A date-time as Airtable keeps it (UTC, milliseconds), a date as its day; anything else as given."""
    if not isinstance(value, str) or not value.strip():
        return value
    try:
        parsed = _parse(value.strip())
    except ValueError:
        return value
    if kind == "date":
        return parsed.date().isoformat()
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Table:
    fields: set[str]
    choices: dict[str, set[str]] = field(default_factory=dict)  # single-select fields and their options
    dates: dict[str, str] = field(default_factory=dict)  # date fields: "dateTime" or "date"
    records: dict[str, _Record] = field(default_factory=dict)  # insertion order = Airtable's default order


class AirtableError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class LocalAirtable(LoopbackServer):
    """The server and its data. Tests seed, edit and delete records directly (not counted as requests)."""

    def __init__(self, token: str = "pat-local-airtable", rate_limit: int = RATE_LIMIT, lockout: float = 0.0) -> None:
        self.token = token
        self.rate_limit = rate_limit
        # Airtable refuses every request for 30 s after a 429 (`lockout=30`); 0: only the over-limit ones.
        self.lockout = lockout
        self.locked_until = 0.0
        self.refused_while_locked = 0
        self.tables: dict[tuple[str, str], _Table] = {}
        self.lock = threading.Lock()
        self.requests: deque[float] = deque()  # recent request times (all bases: one base in practice)
        self.request_count = 0
        self.rate_limited = 0
        self.busiest_second = 0  # the most requests accepted within any one second
        self.patched_records = 0
        self._ids = itertools.count(1)
        self.url = ""

    # --- data, directly ---------------------------------------------------------------------

    def create_table(
        self,
        base: str,
        table: str,
        fields: list[str],
        choices: dict[str, set[str]] | None = None,
        dates: dict[str, str] | None = None,
    ) -> None:
        """`dates`: date fields ("dateTime" or "date"); by default the seed's `Last_Contacted` is a date-time."""
        known = {"Last_Contacted": "dateTime"} if dates is None else dates
        with self.lock:
            self.tables[(base, table)] = _Table(
                set(fields), dict(choices or {}), {name: kind for name, kind in known.items() if name in fields}
            )

    @staticmethod
    def _stored(target: _Table, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            name: _as_stored(target.dates[name], value) if name in target.dates else value
            for name, value in fields.items()
        }

    def add(self, base: str, table: str, records: list[dict[str, Any]]) -> list[str]:
        """Create records (as a user typing them in); returns their ids."""
        with self.lock:
            target = self.tables[(base, table)]
            ids = []
            for fields in records:
                unknown = set(fields) - target.fields
                if unknown:
                    raise ValueError(f"unknown fields {sorted(unknown)}")
                record_id = f"rec{next(self._ids):014d}"
                target.records[record_id] = _Record(record_id, _now_text(), time.time(), self._stored(target, fields))
                ids.append(record_id)
            return ids

    def edit(self, base: str, table: str, record_id: str, fields: dict[str, Any]) -> None:
        with self.lock:
            target = self.tables[(base, table)]
            record = target.records[record_id]
            record.fields.update(self._stored(target, fields))
            record.modified = time.time()

    def delete(self, base: str, table: str, record_id: str) -> None:
        with self.lock:
            del self.tables[(base, table)].records[record_id]

    def fields_of(self, base: str, table: str, record_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.tables[(base, table)].records[record_id].body()["fields"])

    def all_fields(self, base: str, table: str) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {rid: dict(record.body()["fields"]) for rid, record in self.tables[(base, table)].records.items()}

    # --- the API ------------------------------------------------------------------------------

    def _admit(self) -> None:
        """Airtable's limit: more than `rate_limit` requests in a second are refused with 429."""
        now = time.monotonic()
        while self.requests and now - self.requests[0] >= 1.0:
            self.requests.popleft()
        self.request_count += 1
        if now < self.locked_until:
            self.refused_while_locked += 1
            self.rate_limited += 1
            raise AirtableError(429, "RATE_LIMIT_REACHED", "Rate limit exceeded. Please try again later")
        if len(self.requests) >= self.rate_limit:
            self.rate_limited += 1
            self.locked_until = now + self.lockout
            raise AirtableError(429, "RATE_LIMIT_REACHED", "Rate limit exceeded. Please try again later")
        self.requests.append(now)
        self.busiest_second = max(self.busiest_second, len(self.requests))

    def _table(self, base: str, table: str) -> _Table:
        found = self.tables.get((base, table))
        if found is None:
            raise AirtableError(404, "NOT_FOUND", "Could not find what you are looking for")
        return found

    def list_records(self, base: str, table: str, options: dict[str, str]) -> dict[str, Any]:
        target = self._table(base, table)
        try:
            page_size = int(options.get("pageSize") or MAX_PAGE_SIZE)
        except ValueError:
            raise AirtableError(422, "INVALID_REQUEST_UNKNOWN", "pageSize must be a number") from None
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise AirtableError(422, "INVALID_PAGE_SIZE", f"pageSize must be 1-{MAX_PAGE_SIZE}")
        formula = options.get("filterByFormula", "")
        after: float | None = None
        if formula:
            match = _AFTER.match(formula)
            if not match:
                raise AirtableError(422, "INVALID_FILTER_BY_FORMULA", f"The formula is invalid: {formula}")
            try:
                after = _parse(match.group(1)).timestamp()
            except ValueError:
                raise AirtableError(422, "INVALID_FILTER_BY_FORMULA", f"not a time: {match.group(1)}") from None
        chosen = [record for record in target.records.values() if after is None or record.modified > after]
        try:
            start = int(options.get("offset") or 0)
        except ValueError:
            raise AirtableError(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "invalid offset") from None
        page = chosen[start : start + page_size]
        body: dict[str, Any] = {"records": [record.body() for record in page]}
        if start + page_size < len(chosen):
            body["offset"] = str(start + page_size)
        return body

    def update_records(self, base: str, table: str, updates: list[dict[str, Any]]) -> dict[str, Any]:
        target = self._table(base, table)
        if not 1 <= len(updates) <= MAX_BATCH:
            raise AirtableError(422, "INVALID_RECORDS", f"between 1 and {MAX_BATCH} records per request")
        for update in updates:  # all or nothing, as Airtable
            if update.get("id") not in target.records:
                raise AirtableError(404, "MODEL_ID_NOT_FOUND", f"Record {update.get('id')} not found")
            unknown = sorted(set(update.get("fields", {})) - target.fields)
            if unknown:
                raise AirtableError(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{unknown[0]}"')
            for name, value in update.get("fields", {}).items():
                options = target.choices.get(name)
                if options is not None and value not in ("", None) and value not in options:
                    raise AirtableError(
                        422,
                        "INVALID_MULTIPLE_CHOICE_OPTIONS",
                        f'Insufficient permissions to create new select option ""{value}""',
                    )
        changed = []
        for update in updates:
            record = target.records[update["id"]]
            record.fields.update(self._stored(target, update.get("fields", {})))
            record.modified = time.time()
            changed.append(record.body())
        self.patched_records += len(changed)
        return {"records": changed}

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, authorization: str) -> dict[str, Any]:
        with self.lock:
            if authorization != f"Bearer {self.token}":
                raise AirtableError(401, "AUTHENTICATION_REQUIRED", "Authentication required")
            self._admit()
            parts = [part for part in path.split("/") if part]
            if len(parts) < 3 or parts[0] != "v0":
                raise AirtableError(404, "NOT_FOUND", "Could not find what you are looking for")
            base, table, rest = parts[1], parts[2], parts[3:]
            if method == "GET" and not rest:
                return self.list_records(base, table, query)
            if method == "POST" and rest == ["listRecords"]:
                options = {key: str(value) for key, value in (body or {}).items()}
                return self.list_records(base, table, options)
            if method == "PATCH" and not rest:
                return self.update_records(base, table, list((body or {}).get("records", [])))
            if method == "PATCH" and len(rest) == 1:
                updated = self.update_records(base, table, [{"id": rest[0], "fields": (body or {}).get("fields", {})}])
                return dict(updated["records"][0])
            if method == "GET" and len(rest) == 1:
                record = self._table(base, table).records.get(rest[0])
                if record is None:
                    raise AirtableError(404, "MODEL_ID_NOT_FOUND", f"Record {rest[0]} not found")
                return record.body()
            raise AirtableError(404, "NOT_FOUND", "Could not find what you are looking for")

    # --- serving ------------------------------------------------------------------------------

    def start(self) -> str:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                split = urlsplit(self.path)
                query = {key: values[0] for key, values in parse_qs(split.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                    result, status = (
                        owner.handle(self.command, split.path, query, body, self.headers.get("Authorization", "")),
                        200,
                    )
                except AirtableError as error:
                    result, status = {"error": {"type": error.kind, "message": error.message}}, error.status
                except ValueError:
                    result, status = {"error": {"type": "INVALID_REQUEST_BODY", "message": "not JSON"}}, 422
                payload = json.dumps(result).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.url = self._serve(server)
        return self.url


def new_token() -> str:
    return "pat" + secrets.token_hex(16)
