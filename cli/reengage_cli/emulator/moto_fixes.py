"""Where moto and the AWS services it stands in for part ways, the emulator follows the service.

Each fix is installed once per process by `install()` and has a test that fails without it:

- TransactWriteItems rollback: moto snapshots every table a transaction touches with
  `copy.deepcopy` (all items and the stream's records) before each TransactWriteItems, so
  each transaction costs time and memory in proportion to the whole table: at 10,000
  leads a load run exhausted 24 GiB. DynamoDB's contract only needs the touched items
  restored when a transaction is cancelled: this snapshots only those (and the stream's
  length), restored on the same errors.
- Item size on update: moto adds a replaced attribute's new size to the item's current
  size without taking the old value out, so an update that shrinks an item near the
  400 KB limit (trimming a long history) is refused. DynamoDB checks the item after the
  update: so does this.
- Condition parsing: moto parses a condition expression from scratch each time it meets one,
  and a transaction's twice (checking, then writing): about 40% of its time per conditional
  write, where a plain PutItem pays nothing, so the emulator made guarded writes look dear.
  A parsed expression is only read when it is evaluated: parses are kept, keyed by the
  expression, its names and its values.
- Item size on write: moto builds every item written (PutItem, each put of a transaction)
  one attribute at a time, re-measuring all the attributes already set at each step: n(n-1)/2
  size computations for n attributes, about half the emulator's time per lead item. The
  item is measured once instead, with the same limit.
- Queue depth on send: moto's SQS `send_message` reads `queue.attributes`, which counts every
  message in the queue three times (visible, delayed, in flight) only to look up
  ContentBasedDeduplication, so enqueueing n messages costs O(n^2): 1,000 due leads took
  21.6 s and 5,000 took 411 s. SQS's cost per send does not depend on depth: here the
  attributes are a mapping that computes a value when it is read, so the counts are only
  taken by GetQueueAttributes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
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


def _size_after_replacing(limited_dict: type) -> None:
    """LimitedSizeDict.__setitem__, counting a replaced value once (its new size, not both)."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize

    def size_of(item: Any) -> int:
        return int(item.size()) if type(item) is DynamoType else bytesize(str(item))

    def setitem(self: dict[str, Any], key: str, value: Any) -> None:
        others = sum(bytesize(name) + size_of(item) for name, item in self.items() if name != key)
        if others + bytesize(key) + size_of(value) > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    limited_dict.__setitem__ = setitem  # type: ignore[index]


def _items_measured_once(item_class: type, limited_dict: type) -> None:
    """Item.__init__ with the attributes measured once, together (moto measures them n(n-1)/2 times)."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize

    def init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        values = {key: DynamoType(value) for key, value in attrs.items()}
        if sum(bytesize(key) + value.size() for key, value in values.items()) > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = limited_dict()
        dict.update(self.attrs, values)  # later updates go through the checked __setitem__

    item_class.__init__ = init  # type: ignore[misc]


_PARSES_KEPT = 4096


def _conditions_parsed_once() -> None:
    """moto's condition parsing, remembering its last _PARSES_KEPT results (an expression that
    does not parse raises every time, as before)."""
    import moto.dynamodb.models as models
    import moto.dynamodb.models.table as table_module
    import moto.dynamodb.responses as responses
    from moto.dynamodb import comparisons

    create = comparisons.create_condition_expression_parser
    parsed: OrderedDict[tuple[Any, str, str], tuple[Any, list[str], list[str]]] = OrderedDict()

    def parse(expr: Any, names: Any, values: Any) -> tuple[Any, list[str], list[str]]:
        """The parsed expression, and the attribute names and values it used."""
        try:
            key = (expr, json.dumps(names, sort_keys=True), json.dumps(values, sort_keys=True))
        except TypeError:  # not JSON (never from a request): parsed as moto does
            key = None
        if key is not None and key in parsed:
            parsed.move_to_end(key)
            return parsed[key]
        parser = create(expr, names, values)
        result = (parser.parse(), list(parser.expr_attr_names_found), list(parser.expr_attr_values_found))
        if key is not None:
            parsed[key] = result
            if len(parsed) > _PARSES_KEPT:
                parsed.popitem(last=False)
        return result

    def get_filter_expression(expr: Any, names: Any, values: Any) -> Any:
        return parse(expr, names, values)[0]

    class _Parser:
        """What moto's request handlers build to check an expression before the backend parses it again."""

        def __init__(self, expr: Any, names: Any, values: Any) -> None:
            self.arguments = (expr, names, values)
            self.expr_attr_names_found: list[str] = []
            self.expr_attr_values_found: list[str] = []

        def parse(self) -> Any:
            expression, names_found, values_found = parse(*self.arguments)
            self.expr_attr_names_found = list(names_found)  # callers extend them
            self.expr_attr_values_found = list(values_found)
            return expression

    models.get_filter_expression = get_filter_expression
    table_module.get_filter_expression = get_filter_expression
    responses.create_condition_expression_parser = _Parser  # type: ignore[assignment]


class _QueueAttributes(Mapping[str, Any]):
    """moto's `Queue.attributes` with the same keys and values, each computed when read."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        self._names = names

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names:
            raise KeyError(name)
        if name == "RedrivePolicy" and self._queue.redrive_policy:
            return json.dumps(self._queue.redrive_policy)
        value = getattr(self._queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


# moto's own threshold (DynamoDB documents 400 KB and, measured, refuses just above 409 KB).
ITEM_SIZE_LIMIT = 405_000


IDEMPOTENCY_SECONDS = 600  # DynamoDB keeps a transaction's ClientRequestToken for 10 minutes


def _idempotent_transactions() -> None:
    """A TransactWriteItems repeated with its ClientRequestToken (an SDK retry after a lost answer)
    succeeds without writing again, as DynamoDB's does; the same token with other items is refused.
    moto ignores the token and applies the transaction twice."""
    from moto.core.responses import ActionResult
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.transact_write_items
    seen: dict[str, tuple[str, float]] = {}
    lock = threading.Lock()

    def transact_write_items(self: Any) -> Any:
        token = self.body.get("ClientRequestToken")
        if not token:
            return original(self)
        digest = hashlib.sha256(json.dumps(self.body["TransactItems"], sort_keys=True).encode()).hexdigest()
        now = time.monotonic()
        with lock:
            for old in [key for key, (_, at) in seen.items() if now - at > IDEMPOTENCY_SECONDS]:
                del seen[old]
            if token in seen:
                if seen[token][0] != digest:
                    raise MockValidationException(
                        "IdempotentParameterMismatchException: the token was used with other items"
                    )
                return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
        result = original(self)
        with lock:
            seen[token] = (digest, now)
        return result

    DynamoHandler.transact_write_items = transact_write_items  # type: ignore[method-assign]


def install() -> None:
    """Patch moto once per process."""
    global _installed
    if _installed:
        return
    from moto.dynamodb.models.dynamo_type import Item, LimitedSizeDict

    _size_after_replacing(LimitedSizeDict)
    _items_measured_once(Item, LimitedSizeDict)
    _conditions_parsed_once()
    _idempotent_transactions()
    from moto.sqs.models import Queue

    Queue.attributes = property(_QueueAttributes)  # type: ignore[assignment,method-assign]
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
