"""A lighter rollback for moto's TransactWriteItems, installed by the local emulator.

moto snapshots every table a transaction touches with `copy.deepcopy` (all items and the
stream's records) before each TransactWriteItems, so each transaction costs time and
memory in proportion to the whole table: at 10,000 leads a load run exhausted 24 GiB.
DynamoDB's contract only needs the touched items restored when a transaction is
cancelled. This keeps moto's transaction logic and replaces its snapshot with one of the
touched items (and of the stream's length), restored on the same errors.
"""

from __future__ import annotations

import copy
from typing import Any

_installed = False


class _NoTableCopies:
    """Stands in for the `copy` module inside moto's DynamoDB backend: tables are not copied."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    touched = []
    for entry in transact_items:
        _, operation = next(iter(entry.items()))
        table = backend.tables.get(operation.get("TableName"))
        if table is None:
            continue
        key = operation.get("Key") or operation.get("Item") or {}
        if table.hash_key_attr not in key:
            continue
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
        touched.append((table, hash_value, range_value))
    return touched


def install() -> None:
    """Patch moto's DynamoDB backend once per process."""
    global _installed
    if _installed:
        return
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for table, hash_value, range_value in _touched(self, transact_items):
            item = table.get_item(hash_value, range_value)
            shard = table.stream_shard
            saved.append((table, hash_value, range_value, copy.deepcopy(item), len(shard.items) if shard else 0))
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item, stream_length in reversed(saved):
                bucket = table.items[hash_value] if range_value else table.items
                key = range_value if range_value else hash_value
                if item is None:
                    bucket.pop(key, None)
                else:
                    bucket[key] = item
                if table.stream_shard is not None:
                    del table.stream_shard.items[stream_length:]
            raise

    models.copy = _NoTableCopies()  # type: ignore[assignment]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _installed = True
