"""The leads table (DynamoDB through pynamodb): whole leads (`DynamoLeads`) and the schedule index
(`DynamoSchedule`).

The table is keyed by `id`. A sparse global secondary index, `ScheduleShardIndex`
(`schedule_part` / `schedule_at`), holds only leads that can still get a follow-up,
so selecting the due ones is one range Query per shard, never a Scan. Every state
change is a conditional write: two schedulers or two senders racing for a lead cannot
both win.

The index's partition is `<state>#<shard>` (shard = crc32(lead id) % SCHEDULE_SHARDS):
a run's claims (one sort-key value), every lock (`sending`) and the due leads are spread
over the shards instead of sitting on one hot key. `schedule_state` keeps the plain
state: every condition is written against it.
"""

from __future__ import annotations

import heapq
import json
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from pynamodb.attributes import Attribute, BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.constants import ITEM, LIST
from pynamodb.exceptions import AttributeDeserializationError, PynamoDBException, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from reengage.adapters.dynamo_errors import TRANSACTION_CANCELED, conditionally, raise_if_transient
from reengage.domain.clock import format_time, utc_now
from reengage.domain.companies import company_key
from reengage.domain.leads import FollowUpStage, Lead, ScheduleState
from reengage.ports import InvalidLeadDataError, ScheduleEntry, TransientError, UnreadableLead

SCHEDULE_INDEX_NAME = "ScheduleShardIndex"
DEFAULT_SCHEDULE_SHARDS = 16
BATCH_GET_KEYS = 100  # DynamoDB's limit per BatchGetItem
TRANSACTION_ITEMS = 100  # DynamoDB's limit per TransactWriteItems
# DynamoDB refuses a transaction over 4 MB; items are measured as JSON, which is close to their size on the wire.
_TRANSACTION_BYTES = 3_500_000
_UNPROCESSED_ATTEMPTS = 8  # BatchGetItem rounds for keys DynamoDB left unprocessed (throttling) before giving up


def _to_attribute_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {str(key): _to_attribute_value(item) for key, item in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_to_attribute_value(item) for item in value]}
    return {"S": str(value)}


def _from_attribute_value(value: dict[str, Any]) -> Any:
    kind, payload = next(iter(value.items()))
    if kind == "M":
        return {key: _from_attribute_value(item) for key, item in payload.items()}
    if kind == "L":
        return [_from_attribute_value(item) for item in payload]
    if kind == "N":
        number = Decimal(payload)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "NULL":
        return None
    if kind in ("SS", "NS", "BS"):
        return list(payload)
    return payload


class TextHistory(list[dict[str, Any]]):
    """A history another system stored as a string (JSON or free text), read as a list."""


class HistoryAttribute(Attribute[list[dict[str, Any]]]):
    """`engagement_history`: a list of maps, or (from other systems) a JSON or free-text string."""

    attr_type = LIST

    def get_value(self, value: dict[str, Any]) -> Any:
        return value

    def serialize(self, value: list[dict[str, Any]]) -> Any:
        return [_to_attribute_value(entry) for entry in value]

    def deserialize(self, value: Any) -> list[dict[str, Any]]:
        if "L" in value:
            return [e if isinstance(e, dict) else {"note": e} for e in _from_attribute_value(value)]
        text = value.get("S", "")
        if not text.strip():
            return TextHistory()
        try:
            parsed = json.loads(text)
        except ValueError:
            return TextHistory([{"note": text}])
        entries = parsed if isinstance(parsed, list) else [parsed]
        return TextHistory(entry if isinstance(entry, dict) else {"note": entry} for entry in entries)


class ScheduleIndex(GlobalSecondaryIndex["LeadModel"]):
    class Meta:
        index_name = SCHEDULE_INDEX_NAME
        projection = IncludeProjection(["follow_up_stage", "email"])

    schedule_part = UnicodeAttribute(hash_key=True)
    schedule_at = UnicodeAttribute(range_key=True)


class EmailIndex(GlobalSecondaryIndex["LeadModel"]):
    """Leads by address, to match a reply that names no message reengage sent."""

    class Meta:
        index_name = "EmailIndex"
        projection = KeysOnlyProjection()

    email = UnicodeAttribute(hash_key=True)


class CompanyIndex(GlobalSecondaryIndex["LeadModel"]):
    """Leads by company (registrable domain), for the company-wide pause."""

    class Meta:
        index_name = "CompanyIndex"
        projection = KeysOnlyProjection()

    company_key = UnicodeAttribute(hash_key=True)


class LeadModel(Model):
    class Meta:
        table_name = "unbound"  # set by bind_leads_table from settings
        schedule_shards = DEFAULT_SCHEDULE_SHARDS  # likewise
        max_pool_connections = 20  # the scheduler claims from 16 threads at once (services/scheduler.py)

    id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    company = UnicodeAttribute(null=True)
    company_website = UnicodeAttribute(null=True)
    timezone = UnicodeAttribute(null=True)
    country = UnicodeAttribute(null=True)
    # Derived from email/website (domain.companies): the key of CompanyIndex, absent when none.
    company_key = UnicodeAttribute(null=True)
    paused_until = UnicodeAttribute(null=True)
    engagement_status = UnicodeAttribute(null=True)
    engagement_stage = UnicodeAttribute(null=True)
    email_confidence_level = UnicodeAttribute(null=True)
    last_contacted = UnicodeAttribute(null=True)
    follow_up_stage = UnicodeAttribute(null=True)
    response_status = UnicodeAttribute(null=True)
    eligible_for_reengagement = BooleanAttribute(null=True)
    suppressed = BooleanAttribute(null=True)
    engagement_history = HistoryAttribute(null=True)
    created_at = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    schedule_state = UnicodeAttribute(null=True)
    # `<schedule_state>#<shard>`: the index's partition, written with every change of schedule_state.
    schedule_part = UnicodeAttribute(null=True)
    schedule_at = UnicodeAttribute(null=True)
    claim_stage = UnicodeAttribute(null=True)
    claim_campaign = UnicodeAttribute(null=True)
    invalid_reason = UnicodeAttribute(null=True)
    version = NumberAttribute(null=True)  # bumped by every reengage write; every write conditions on it
    schedule_index = ScheduleIndex()
    email_index = EmailIndex()
    company_index = CompanyIndex()


def _to_lead(model: LeadModel) -> Lead:
    return Lead(
        id=model.id,
        email=model.email or "",
        name=model.name or "",
        company=model.company or "",
        company_website=model.company_website or "",
        timezone=model.timezone or "",
        country=model.country or "",
        paused_until=model.paused_until,
        engagement_status=model.engagement_status or "",
        engagement_stage=model.engagement_stage or "",
        email_confidence_level=model.email_confidence_level or "",
        last_contacted=model.last_contacted,
        follow_up_stage=model.follow_up_stage,
        response_status=model.response_status,
        eligible_for_reengagement=bool(model.eligible_for_reengagement),
        suppressed=bool(model.suppressed),
        engagement_history=list(model.engagement_history or []),
        created_at=model.created_at,
        updated_at=model.updated_at,
        schedule_state=model.schedule_state,
        schedule_at=model.schedule_at,
        claim_stage=model.claim_stage,
        version=int(model.version or 0),
        history_stored_as_text=isinstance(model.engagement_history, TextHistory),
        schedule_unindexed=bool(model.schedule_state)
        and model.schedule_part != schedule_partition(model.schedule_state, model.id),
    )


def _optional(value: str | None) -> str | None:
    return value if value else None


def _to_model(lead: Lead) -> LeadModel:
    return LeadModel(lead.id, **_model_values(lead))


def _model_values(lead: Lead) -> dict[str, Any]:
    """The lead's attributes as LeadModel takes them (all but the key)."""
    return {
        "email": _optional(lead.email),  # a key of EmailIndex: absent, never empty
        "name": lead.name,
        "company": lead.company,
        "company_website": lead.company_website,
        "timezone": _optional(lead.timezone),
        "country": _optional(lead.country),
        "company_key": company_key(lead.email, lead.company_website),
        "paused_until": _optional(lead.paused_until),
        "engagement_status": lead.engagement_status,
        "engagement_stage": lead.engagement_stage,
        "email_confidence_level": lead.email_confidence_level,
        "last_contacted": _optional(lead.last_contacted),
        "follow_up_stage": _optional(lead.follow_up_stage),
        "response_status": _optional(lead.response_status),
        "eligible_for_reengagement": lead.eligible_for_reengagement,
        "suppressed": lead.suppressed or None,
        "engagement_history": lead.engagement_history,
        "created_at": _optional(lead.created_at),
        "updated_at": _optional(lead.updated_at),
        "schedule_state": _optional(lead.schedule_state),
        "schedule_part": schedule_partition(lead.schedule_state, lead.id) if lead.schedule_state else None,
        "schedule_at": _optional(lead.schedule_at),
        "claim_stage": _optional(lead.claim_stage),
        "version": lead.version or None,
    }


def _attribute_values(lead: Lead) -> dict[str, Any]:
    """The lead's attributes (all but the key) as DynamoDB JSON, exactly as `_to_model(lead).serialize()`
    gives them (a test holds the two equal), through the same attribute serializers but without
    building a model: a bulk write pays a quarter of the CPU per lead (0.11 against 0.44 ms measured)."""
    attributes = LeadModel.get_attributes()
    values = {}
    for name, value in _model_values(lead).items():
        attribute = attributes[name]
        serialized = None if value is None else attribute.serialize(value)
        if serialized is not None:
            values[attribute.attr_name] = {attribute.attr_type: serialized}
    return values


def shard_of(lead_id: str, shards: int) -> int:
    """The lead's shard of the schedule index: stable across processes and Python versions."""
    return zlib.crc32(lead_id.encode("utf-8")) % shards


def schedule_partition(state: str, lead_id: str) -> str:
    """The schedule index's partition key for a lead in `state`: `<state>#<shard>`."""
    return f"{state}#{shard_of(lead_id, LeadModel.Meta.schedule_shards)}"


def scheduled(lead_id: str, state: ScheduleState, at: str | None = None) -> list[Any]:
    """Update actions that put the lead in the index under `state` (at `at`, when given)."""
    actions = [
        LeadModel.schedule_state.set(state.value),
        LeadModel.schedule_part.set(schedule_partition(state.value, lead_id)),
    ]
    return [*actions, LeadModel.schedule_at.set(at)] if at is not None else actions


UNSCHEDULED = [LeadModel.schedule_state.remove(), LeadModel.schedule_part.remove(), LeadModel.schedule_at.remove()]


def unchanged_since(version: int) -> Condition:
    """The item is as it was read: same version (absent on items reengage never wrote)."""
    return LeadModel.version == version if version else LeadModel.version.does_not_exist()


BUMP = LeadModel.version.add(1)


_CONNECTING = threading.Lock()


def _table() -> Any:
    """LeadModel's table connection with its client built: once per process, not once per thread
    that happens to ask first (pynamodb builds both lazily and without a lock)."""
    connection = LeadModel._connection
    if connection is None or connection.connection._client is None:
        with _CONNECTING:
            connection = LeadModel._get_connection()
            _ = connection.connection.client
    return connection


def bind_leads_table(table_name: str, schedule_shards: int | None = None) -> None:
    """pynamodb reads the table name and builds its client lazily, per class: bind both here
    so a process can point at another table or endpoint (and its index's shard count, when given)."""
    LeadModel.Meta.table_name = table_name
    if schedule_shards is not None:
        LeadModel.Meta.schedule_shards = schedule_shards
    LeadModel._connection = None


def _guarded(lead: Lead, previous: Lead | None) -> tuple[Lead, Condition]:
    """The lead to write (its version moved on by one) and the write's condition: new only if
    absent; otherwise only if the stored version is still `previous`'s."""
    if previous is None:
        return replace(lead, version=1), LeadModel.id.does_not_exist()
    return replace(lead, version=previous.version + 1), LeadModel.id.exists() & unchanged_since(previous.version)


def _transactions(puts: list[dict[str, Any]]) -> Iterator[list[int]]:
    """Positions of `puts` grouped into transactions DynamoDB accepts (item count and size)."""
    group: list[int] = []
    size = 0
    for index, put in enumerate(puts):
        item_size = len(json.dumps(put["Item"]))
        if group and (len(group) == TRANSACTION_ITEMS or size + item_size > _TRANSACTION_BYTES):
            yield group
            group, size = [], 0
        group.append(index)
        size += item_size
    if group:
        yield group


def _read(action: Any) -> Any:
    try:
        return action()
    except PynamoDBException as error:
        raise_if_transient(error)
        raise


def _update(lead_id: str, actions: list[Any], condition: Condition) -> bool:
    # The low-level call asks for no item back: a foreign item with a badly typed
    # attribute must not turn a successful write into an error.
    return conditionally(lambda: LeadModel._get_connection().update_item(lead_id, actions=actions, condition=condition))


class DynamoLeads:
    """Whole leads. Satisfies `reengage.ports.Leads`."""

    def __init__(self, table_name: str, page_size: int = 500, schedule_shards: int | None = None) -> None:
        bind_leads_table(table_name, schedule_shards)
        self.page_size = page_size

    def get(self, lead_id: str) -> Lead | None:
        try:
            return _to_lead(_read(lambda: LeadModel.get(lead_id, consistent_read=True)))
        except LeadModel.DoesNotExist:
            return None
        except AttributeDeserializationError as error:
            raise InvalidLeadDataError(f"lead {lead_id!r}: {error}") from error

    def put(self, lead: Lead, previous: Lead | None = None) -> bool:
        versioned, condition = _guarded(lead, previous)
        model = _to_model(versioned)
        return conditionally(lambda: model.save(condition=condition))

    def get_many(self, lead_ids: Sequence[str]) -> dict[str, Lead | UnreadableLead]:
        """Consistent reads, BATCH_GET_KEYS per BatchGetItem; keys DynamoDB leaves unprocessed are asked
        again (with a pause) until none are left, or TransientError."""
        connection = _table()
        found: dict[str, Lead | UnreadableLead] = {}
        unique = list(dict.fromkeys(lead_ids))
        for start in range(0, len(unique), BATCH_GET_KEYS):
            keys = [{"id": {"S": lead_id}} for lead_id in unique[start : start + BATCH_GET_KEYS]]
            for attempt in range(_UNPROCESSED_ATTEMPTS):
                page = _read(lambda k=keys: connection.batch_get_item(k, consistent_read=True))
                for raw in page.get("Responses", {}).get(LeadModel.Meta.table_name, []):
                    item = read_item(raw)
                    found[item.lead_id if isinstance(item, UnreadableLead) else item.id] = item
                keys = page.get("UnprocessedKeys", {}).get(LeadModel.Meta.table_name, {}).get("Keys", [])
                if not keys:
                    break
                time.sleep(min(0.05 * 2**attempt, 2.0))
            else:
                raise TransientError(f"DynamoDB left {len(keys)} keys of a BatchGetItem unprocessed")
        return found

    def put_all(self, writes: Sequence[tuple[Lead, Lead | None]]) -> list[bool]:
        """Each lead written whole, only if unchanged since its `previous` was read (as `put`), up to
        TRANSACTION_ITEMS per TransactWriteItems. A transaction is all or nothing: a lead DynamoDB
        names as the reason it was cancelled (condition failed, conflicting write) is left out and the
        rest sent again; a lead left alone is written by `put`. Per lead, whether it was written."""
        written = [False] * len(writes)
        table = _table()
        puts = []
        for lead, previous in writes:
            versioned, condition = _guarded(lead, previous)
            values = _attribute_values(versioned)
            puts.append(table.get_operation_kwargs(lead.id, key=ITEM, attributes=values, condition=condition))
        for group in _transactions(puts):
            pending = group
            while len(pending) > 1:
                refused = _transact([puts[index] for index in pending])
                if not refused:
                    break
                pending = [index for position, index in enumerate(pending) if position not in refused]
            if len(pending) == 1:
                written[pending[0]] = self.put(*writes[pending[0]])
            else:
                for index in pending:
                    written[index] = True
        return written

    def find_by_email(self, address: str) -> str | None:
        for candidate in dict.fromkeys([address.strip(), address.strip().lower()]):
            for row in _read(lambda c=candidate: list(LeadModel.email_index.query(c, limit=1))):
                return str(row.id)
        return None

    def colleagues(self, company: str) -> list[str]:
        return [str(row.id) for row in _read(lambda: list(LeadModel.company_index.query(company)))]

    def scan(self) -> Iterator[Lead | UnreadableLead]:
        connection = LeadModel._get_connection()
        last_key: dict[str, Any] | None = None
        while True:
            page = _read(lambda key=last_key: connection.scan(exclusive_start_key=key, limit=self.page_size))
            for raw in page.get("Items", []):
                yield read_item(raw)
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                return

    def set_attributes(self, lead_id: str, values: Mapping[str, Any], previous_version: int) -> bool:
        attributes = LeadModel.get_attributes()
        actions = [
            attributes[name].remove() if value is None else attributes[name].set(value)
            for name, value in values.items()
        ]
        if "schedule_state" in values:
            state = values["schedule_state"]
            part = LeadModel.schedule_part
            actions.append(part.set(schedule_partition(state, lead_id)) if state else part.remove())
        return _update(lead_id, [*actions, BUMP], unchanged_since(previous_version) & LeadModel.id.exists())

    def put_many(self, leads: Iterable[Lead]) -> int:
        """Bulk-write new leads, 25 per BatchWriteItem, unconditionally (benchmarks and bulk loads only)."""
        written = 0
        with LeadModel.batch_write() as batch:
            for lead in leads:
                batch.save(_to_model(lead))
                written += 1
        return written


def _transact(puts: list[dict[str, Any]]) -> set[int]:
    """Positions of the puts that cancelled their transaction (empty: all written)."""
    try:
        _table().connection.transact_write_items(
            condition_check_items=(), delete_items=(), put_items=puts, update_items=()
        )
    except TransactWriteError as error:
        if error.cause_response_code != TRANSACTION_CANCELED:
            raise_if_transient(error)
            raise
        refused = {position for position, reason in enumerate(error.cancellation_reasons) if reason}
        return refused or set(range(len(puts)))  # cancelled naming no item: each lead goes alone
    return set()


def read_item(raw: dict[str, Any]) -> Lead | UnreadableLead:
    """A raw item (DynamoDB JSON, as a scan or the stream gives it) as a lead, or why it is not one."""
    try:
        return _to_lead(LeadModel.from_raw_data(raw))
    except AttributeDeserializationError as error:
        return UnreadableLead(str(raw.get("id", {}).get("S", "?")), str(error))


def read_lead(raw: dict[str, Any]) -> Lead:
    """A raw item as a lead; InvalidLeadDataError when an attribute has the wrong type."""
    item = read_item(raw)
    if isinstance(item, UnreadableLead):
        raise InvalidLeadDataError(item.problem)
    return item


def _entry(row: dict[str, Any], state: ScheduleState) -> ScheduleEntry:
    """An index row as an entry; a row whose stage or address is not text carries its problem."""
    lead_id = str(row.get("id", {}).get("S", ""))
    at = str(row.get("schedule_at", {}).get("S", ""))
    values: dict[str, str | None] = {}
    problems = []
    for name in ("follow_up_stage", "email"):
        value = row.get(name)
        if value is None or "NULL" in value:
            values[name] = None
        elif "S" in value:
            values[name] = value["S"]
        else:
            values[name] = None
            problems.append(f"{name} is stored as {next(iter(value))}, not text")
    return ScheduleEntry(lead_id, state, at, values["follow_up_stage"], values["email"] or "", "; ".join(problems))


@dataclass
class QueryStats:
    """Items DynamoDB examined and Query calls made (the selection benchmark reads these)."""

    items_examined: int = 0
    calls: int = 0


class DynamoSchedule:
    """The sparse schedule index and the conditional moves along it. Satisfies `reengage.ports.Schedule`."""

    def __init__(self, table_name: str, page_size: int = 500, schedule_shards: int | None = None) -> None:
        bind_leads_table(table_name, schedule_shards)
        self.page_size = page_size
        self.query_stats = QueryStats()

    def entries(self, state: ScheduleState, until: str) -> Iterator[ScheduleEntry]:
        """Every shard's rows up to `until`, merged oldest first (each shard is read page by page)."""
        shards = LeadModel.Meta.schedule_shards
        yield from heapq.merge(
            *(self._shard_entries(f"{state.value}#{shard}", state, until) for shard in range(shards)),
            key=lambda entry: entry.at,
        )

    def _shard_entries(self, partition: str, state: ScheduleState, until: str) -> Iterator[ScheduleEntry]:
        # Read raw: a row another system wrote with a badly typed attribute must not stop the run.
        connection = LeadModel._get_connection()
        last_key: dict[str, Any] | None = None
        while True:
            page = _read(
                lambda key=last_key: connection.query(
                    partition,
                    range_key_condition=LeadModel.schedule_at <= until,
                    index_name=SCHEDULE_INDEX_NAME,
                    exclusive_start_key=key,
                    limit=self.page_size,
                )
            )
            self.query_stats.calls += 1
            self.query_stats.items_examined += page.get("ScannedCount", 0)
            for row in page.get("Items", []):
                yield _entry(row, state)
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                return

    def claim(self, entry: ScheduleEntry, stage: FollowUpStage, claimed_at: str, campaign_id: str) -> bool:
        return _update(
            entry.lead_id,
            [
                *scheduled(entry.lead_id, ScheduleState.CLAIMED, claimed_at),
                LeadModel.claim_stage.set(stage.value),
                LeadModel.claim_campaign.set(campaign_id),
                LeadModel.eligible_for_reengagement.set(True),
                LeadModel.updated_at.set(claimed_at),
                BUMP,
            ],
            (LeadModel.schedule_state == entry.state.value) & (LeadModel.schedule_at == entry.at),
        )

    def unschedule(self, entry: ScheduleEntry) -> bool:
        return _update(
            entry.lead_id,
            [*UNSCHEDULED, BUMP],
            (LeadModel.schedule_state == entry.state.value) & (LeadModel.schedule_at == entry.at),
        )

    def release_claim(self, lead_id: str, stage: FollowUpStage, due_at: str | None) -> bool:
        schedule = scheduled(lead_id, ScheduleState.DUE, due_at) if due_at else UNSCHEDULED
        return _update(
            lead_id,
            [
                *schedule,
                LeadModel.claim_stage.remove(),
                LeadModel.claim_campaign.remove(),
                LeadModel.eligible_for_reengagement.set(False),
                LeadModel.updated_at.set(format_time(utc_now())),
                BUMP,
            ],
            (LeadModel.schedule_state == ScheduleState.CLAIMED.value) & (LeadModel.claim_stage == stage.value),
        )

    def set_aside(self, lead_id: str, problem: str) -> bool:
        return _update(
            lead_id,
            [
                *scheduled(lead_id, ScheduleState.INVALID, format_time(utc_now())),
                LeadModel.invalid_reason.set(problem[:500]),
                LeadModel.claim_stage.remove(),
                LeadModel.claim_campaign.remove(),
                # Set, not added: the unreadable attribute may be the version itself (another
                # system wrote text there). Any new value fails every write conditioned on an old read.
                LeadModel.version.set(time.time_ns()),
            ],
            LeadModel.id.exists()
            & (LeadModel.schedule_state.does_not_exist() | (LeadModel.schedule_state != ScheduleState.SENDING.value)),
        )
