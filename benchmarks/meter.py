"""Counts what the application asks of AWS, from outside the application: every botocore call
(by service and operation), DynamoDB write and read units, and writes per partition key.

Hooks are registered on every botocore client created while the meter is installed (the
application's own clients and pynamodb's alike), so nothing in the code under measure
knows it is measured. Write units are estimated the way DynamoDB bills them, from the
item before and after each write, read out of the in-process emulator's tables:
ceil(max(old, new) size / 1 KB) per item written (a failed conditional write too), twice
that inside a transaction (a ConditionCheck too), plus one unit for each index entry put or deleted (an entry
whose keys change is a delete and a put; every projection here is under 1 KB). Read
units: 1 per consistent GetItem up to 4 KB, and half a unit per 4 KB a Query returns.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.session

ACCOUNT, REGION = "123456789012", "us-east-1"
_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


@dataclass
class Tally:
    calls: Counter[str] = field(default_factory=Counter)  # "service.Operation" -> calls
    write_units: float = 0.0
    read_units: float = 0.0
    key_writes: Counter[str] = field(default_factory=Counter)  # "table-or-index:key" -> writes
    meter_cpu: float = 0.0  # CPU seconds the hooks themselves took in the application's threads

    def busiest_key(self, prefix: str = "") -> tuple[str, float]:
        """The partition key with the most writes (among keys starting with `prefix`), and its share."""
        keys = {key: count for key, count in self.key_writes.items() if key.startswith(prefix)}
        if not keys:
            return "-", 0.0
        key, count = max(keys.items(), key=lambda item: item[1])
        return key, count / sum(keys.values())


def _backend() -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[ACCOUNT][REGION]


def _key_of(table: Any, key: dict[str, Any]) -> tuple[Any, Any]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    return hash_value, range_value


def _snapshot(table_name: str, key: dict[str, Any]) -> tuple[Any, Any] | None:
    """The item as stored now (a JSON copy, its size, its index entries), or None."""
    table = _backend().tables.get(table_name)
    if table is None or table.hash_key_attr not in key:
        return None
    item = table.get_item(*_key_of(table, key))
    if item is None:
        return table, None
    entries = {}
    for index in table.global_indexes:
        if all(attribute in item.attrs for attribute in index.schema_key_attrs):
            projected = index.project(item)
            keys = tuple(str(item.attrs[name].value) for name in index.schema_key_attrs)
            entries[index.name] = (keys, json.dumps(projected.to_json(), sort_keys=True, default=str))
    return table, (item.size(), entries, str(item.attrs[table.hash_key_attr].value))


@dataclass
class _Pending:
    table_name: str
    key: dict[str, Any]
    before: Any
    transactional: bool


class Meter:
    """Install with `with meter.installed():`; read `meter.tally` (reset it between steps)."""

    def __init__(self) -> None:
        self.tally = Tally()
        self._lock = threading.Lock()
        self._local = threading.local()

    def reset(self) -> Tally:
        with self._lock:
            done, self.tally = self.tally, Tally()
        return done

    # -- hooks ----------------------------------------------------------------------
    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        started = time.thread_time()
        try:
            self._note_call(params, model)
        finally:
            self._charge(time.thread_time() - started)

    def _charge(self, seconds: float) -> None:
        with self._lock:
            self.tally.meter_cpu += seconds

    def _note_call(self, params: dict[str, Any], model: Any) -> None:
        service = model.service_model.service_name
        operation = model.name
        with self._lock:
            self.tally.calls[f"{service}.{operation}"] += 1
        pending: list[_Pending] = []
        if service == "dynamodb":
            if operation in _WRITES:
                key = params.get("Key") or params.get("Item") or {}
                pending.append(_Pending(params["TableName"], key, _snapshot(params["TableName"], key), False))
            elif operation == "TransactWriteItems":
                for entry in params.get("TransactItems", []):
                    # A ConditionCheck is billed like a transactional write of its item (no index change).
                    kind, body = next(iter(entry.items()))
                    key = body.get("Key") or body.get("Item") or {}
                    pending.append(_Pending(body["TableName"], key, _snapshot(body["TableName"], key), True))
            elif operation == "BatchWriteItem":
                for table_name, requests in params.get("RequestItems", {}).items():
                    for request in requests:
                        body = request.get("PutRequest") or request.get("DeleteRequest") or {}
                        key = body.get("Item") or body.get("Key") or {}
                        pending.append(_Pending(table_name, key, _snapshot(table_name, key), False))
        self._local.pending = pending

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        started = time.thread_time()
        try:
            self._note_result(parsed, model)
        finally:
            self._charge(time.thread_time() - started)

    def _note_result(self, parsed: dict[str, Any], model: Any) -> None:
        pending: list[_Pending] = getattr(self._local, "pending", [])
        self._local.pending = []
        units, keys = 0.0, Counter[str]()
        for write in pending:
            after = _snapshot(write.table_name, write.key)
            units += self._write_units(write, after, keys)
        reads = self._read_units(model.name, parsed) if model.service_model.service_name == "dynamodb" else 0.0
        with self._lock:
            self.tally.write_units += units
            self.tally.read_units += reads
            self.tally.key_writes.update(keys)

    @staticmethod
    def _write_units(write: _Pending, after: Any, keys: Counter[str]) -> float:
        if write.before is None or after is None:
            return 0.0
        table, old = write.before
        _, new = after
        sizes = [state[0] for state in (old, new) if state is not None]
        base = math.ceil(max(sizes, default=1) / 1024) or 1
        units = base * (2 if write.transactional else 1)
        lead = (new or old or (0, {}, str(next(iter(write.key.values()), {}))))[2]
        keys[f"{table.name}:{lead}"] += 1
        old_entries = old[1] if old else {}
        new_entries = new[1] if new else {}
        for index in table.global_indexes:
            before, now = old_entries.get(index.name), new_entries.get(index.name)
            if before == now:
                continue
            touched = []
            if before and now and before[0] == now[0]:
                touched = [now[0]]  # projection changed in place: one put
            else:
                touched = [entry[0] for entry in (before, now) if entry]
            for index_keys in touched:
                units += 1
                keys[f"{table.name}/{index.name}:{index_keys[0]}"] += 1
        return float(units)

    @staticmethod
    def _read_units(operation: str, parsed: dict[str, Any]) -> float:
        if operation == "GetItem":
            return 1.0 if "Item" in parsed else 0.5
        if operation == "BatchGetItem":
            return float(sum(len(items) for items in parsed.get("Responses", {}).values()))
        if operation in ("Query", "Scan"):
            size = sum(len(json.dumps(item)) for item in parsed.get("Items", []))
            return max(0.5, math.ceil(size / 4096) * 0.5)
        return 0.0

    @contextmanager
    def installed(self) -> Iterator[Meter]:
        original = botocore.session.Session.create_client
        meter = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            client.meta.events.register("before-parameter-build.*.*", meter._before)
            client.meta.events.register("after-call.*.*", meter._after)
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            botocore.session.Session.create_client = original  # type: ignore[method-assign]
