"""Data access for the leads table (DynamoDB through pynamodb). The only module that imports pynamodb.

The table is keyed by `id`. A sparse global secondary index, `ScheduleIndex`
(`schedule_state` / `schedule_at`), holds only leads that can still get a follow-up,
so selecting the due ones is one range Query, never a Scan. Every state change is a
conditional write: two schedulers or two senders racing for a lead cannot both win.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from pynamodb.attributes import Attribute, BooleanAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.constants import LIST
from pynamodb.exceptions import AttributeDeserializationError, PynamoDBException
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from reengage.clock import format_time, utc_now
from reengage.dynamo_errors import conditionally, raise_if_transient
from reengage.leads import FollowUpStage, Lead, ScheduleState
from reengage.ports import InvalidLeadDataError, LedgerRecord, LedgerState, LockResult, QueryStats, ScheduleEntry
from reengage.send_ledger import DynamoSendLedger, LedgerModel

SCHEDULE_INDEX_NAME = "ScheduleIndex"


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
            return []
        try:
            parsed = json.loads(text)
        except ValueError:
            return [{"note": text}]
        if isinstance(parsed, list):
            return [entry if isinstance(entry, dict) else {"note": entry} for entry in parsed]
        return [parsed if isinstance(parsed, dict) else {"note": parsed}]


class ScheduleIndex(GlobalSecondaryIndex["LeadModel"]):
    class Meta:
        index_name = SCHEDULE_INDEX_NAME
        projection = IncludeProjection(["follow_up_stage", "email"])

    schedule_state = UnicodeAttribute(hash_key=True)
    schedule_at = UnicodeAttribute(range_key=True)


class EmailIndex(GlobalSecondaryIndex["LeadModel"]):
    """Leads by address, to match a reply that names no message reengage sent."""

    class Meta:
        index_name = "EmailIndex"
        projection = KeysOnlyProjection()

    email = UnicodeAttribute(hash_key=True)


class LeadModel(Model):
    class Meta:
        table_name = "unbound"  # set by DynamoLeadStore from settings

    id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    company = UnicodeAttribute(null=True)
    company_website = UnicodeAttribute(null=True)
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
    schedule_at = UnicodeAttribute(null=True)
    claim_stage = UnicodeAttribute(null=True)
    claim_campaign = UnicodeAttribute(null=True)
    schedule_index = ScheduleIndex()
    email_index = EmailIndex()


def _to_lead(model: LeadModel) -> Lead:
    return Lead(
        id=model.id,
        email=model.email or "",
        name=model.name or "",
        company=model.company or "",
        company_website=model.company_website or "",
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
    )


def _to_model(lead: Lead) -> LeadModel:
    def optional(value: str | None) -> str | None:
        return value if value else None

    return LeadModel(
        lead.id,
        email=optional(lead.email),  # a key of EmailIndex: absent, never empty
        name=lead.name,
        company=lead.company,
        company_website=lead.company_website,
        engagement_status=lead.engagement_status,
        engagement_stage=lead.engagement_stage,
        email_confidence_level=lead.email_confidence_level,
        last_contacted=optional(lead.last_contacted),
        follow_up_stage=optional(lead.follow_up_stage),
        response_status=optional(lead.response_status),
        eligible_for_reengagement=lead.eligible_for_reengagement,
        suppressed=lead.suppressed or None,
        engagement_history=lead.engagement_history,
        created_at=optional(lead.created_at),
        updated_at=optional(lead.updated_at),
        schedule_state=optional(lead.schedule_state),
        schedule_at=optional(lead.schedule_at),
        claim_stage=optional(lead.claim_stage),
    )


def _token(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:36]


def _unchanged_since(updated_at: str | None) -> Condition:
    """Optimistic lock on `updated_at` (absent on items nobody updated)."""
    return LeadModel.updated_at == updated_at if updated_at else LeadModel.updated_at.does_not_exist()


class DynamoLeadStore:
    """The leads table. Satisfies `reengage.ports.LeadStore`."""

    def __init__(self, table_name: str, ledger_table_name: str, page_size: int = 500) -> None:
        # pynamodb reads the table name and builds its client lazily, per class:
        # bind both here so a process can point at another table or endpoint.
        LeadModel.Meta.table_name = table_name
        LeadModel._connection = None
        self.ledger = DynamoSendLedger(ledger_table_name)
        self._connection: Connection | None = None  # for transactions, built on first use
        self.page_size = page_size
        self.query_stats = QueryStats()

    # -- reads -------------------------------------------------------------
    def get(self, lead_id: str) -> Lead | None:
        try:
            return _to_lead(LeadModel.get(lead_id, consistent_read=True))
        except LeadModel.DoesNotExist:
            return None
        except AttributeDeserializationError as error:
            raise InvalidLeadDataError(f"lead {lead_id!r}: {error}") from error
        except PynamoDBException as error:
            raise_if_transient(error)
            raise

    def schedule(self, state: ScheduleState, until: str, page_size: int | None = None) -> Iterator[ScheduleEntry]:
        size = page_size or self.page_size
        last_key: dict[str, Any] | None = None
        while True:
            page = LeadModel.schedule_index.query(
                state.value,
                LeadModel.schedule_at <= until,
                limit=size,
                page_size=size,
                last_evaluated_key=last_key,
            )
            try:
                rows = list(page)
            except PynamoDBException as error:
                raise_if_transient(error)
                raise
            self.query_stats.calls += 1
            self.query_stats.items_examined += page.page_iter.total_scanned_count
            for row in rows:
                yield ScheduleEntry(row.id, state, row.schedule_at or "", row.follow_up_stage, row.email or "")
            last_key = page.last_evaluated_key
            if not last_key:
                return

    def scan(self) -> Iterator[Lead]:
        """Every lead, page by page (upkeep and statistics only; selection never scans)."""
        for raw in self.scan_raw():
            try:
                yield _to_lead(LeadModel.from_raw_data(raw))
            except AttributeDeserializationError:
                continue

    def scan_raw(self) -> Iterator[dict[str, Any]]:
        connection = LeadModel._get_connection()
        last_key: dict[str, Any] | None = None
        while True:
            page = connection.scan(exclusive_start_key=last_key, limit=self.page_size)  # type: ignore[arg-type]
            self.query_stats.calls += 1
            self.query_stats.items_examined += page.get("ScannedCount", 0)
            yield from page.get("Items", [])
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                return

    def read_raw(self, raw: dict[str, Any]) -> Lead:
        """A raw item as a lead, with a clear error when an attribute has the wrong type."""
        try:
            return _to_lead(LeadModel.from_raw_data(raw))
        except AttributeDeserializationError as error:
            raise InvalidLeadDataError(str(error)) from error

    # -- conditional writes ------------------------------------------------
    def _update(self, lead_id: str, actions: list[Any], condition: Condition) -> bool:
        # The low-level call asks for no item back: a foreign item with a badly typed
        # attribute must not turn a successful write into an error.
        return conditionally(
            lambda: LeadModel._get_connection().update_item(lead_id, actions=actions, condition=condition)
        )

    def claim(self, entry: ScheduleEntry, stage: FollowUpStage, claimed_at: str, campaign_id: str) -> bool:
        return self._update(
            entry.lead_id,
            [
                LeadModel.schedule_state.set(ScheduleState.CLAIMED.value),
                LeadModel.schedule_at.set(claimed_at),
                LeadModel.claim_stage.set(stage.value),
                LeadModel.claim_campaign.set(campaign_id),
                LeadModel.eligible_for_reengagement.set(True),
                LeadModel.updated_at.set(claimed_at),
            ],
            (LeadModel.schedule_state == entry.state.value) & (LeadModel.schedule_at == entry.at),
        )

    def unschedule(self, entry: ScheduleEntry) -> bool:
        return self._update(
            entry.lead_id,
            [LeadModel.schedule_state.remove(), LeadModel.schedule_at.remove()],
            (LeadModel.schedule_state == entry.state.value) & (LeadModel.schedule_at == entry.at),
        )

    def release_claim(self, lead_id: str, stage: FollowUpStage, due_at: str | None) -> bool:
        schedule = (
            [LeadModel.schedule_state.set(ScheduleState.DUE.value), LeadModel.schedule_at.set(due_at)]
            if due_at
            else [LeadModel.schedule_state.remove(), LeadModel.schedule_at.remove()]
        )
        return self._update(
            lead_id,
            [
                *schedule,
                LeadModel.claim_stage.remove(),
                LeadModel.claim_campaign.remove(),
                LeadModel.eligible_for_reengagement.set(False),
                LeadModel.updated_at.set(format_time(utc_now())),
            ],
            (LeadModel.schedule_state == ScheduleState.CLAIMED.value) & (LeadModel.claim_stage == stage.value),
        )

    def _transaction(self, build: Callable[[TransactWrite], None], token: str | None = None) -> bool:
        """All-or-nothing writes across the leads table and the send ledger; False when a condition failed."""

        if self._connection is None:
            self._connection = Connection()

        def commit() -> None:
            with TransactWrite(connection=self._connection, client_request_token=token) as transaction:
                build(transaction)

        return conditionally(commit)

    def lock_for_send(self, lead: Lead, stage: FollowUpStage, locked_at: str, campaign_id: str) -> LockResult:
        lead_id = lead.id
        # Unchanged since the sender read it: a reply or an opt-out recorded meanwhile wins.
        unchanged = (
            LeadModel.response_status == lead.response_status
            if lead.response_status
            else LeadModel.response_status.does_not_exist()
        ) & (LeadModel.email == lead.email)
        if lead.suppressed:
            unchanged &= LeadModel.suppressed == True  # noqa: E712 - a pynamodb condition, not a comparison
        else:
            unchanged &= LeadModel.suppressed.does_not_exist() | (LeadModel.suppressed == False)  # noqa: E712

        def build(transaction: TransactWrite) -> None:
            transaction.save(
                LedgerModel(
                    lead_id, stage.value, state=LedgerState.SENDING, locked_at=locked_at, campaign_id=campaign_id
                ),
                condition=LedgerModel.lead_id.does_not_exist(),
            )
            transaction.update(
                LeadModel(lead_id),
                [LeadModel.schedule_state.set(ScheduleState.SENDING.value), LeadModel.schedule_at.set(locked_at)],
                (LeadModel.schedule_state == ScheduleState.CLAIMED.value)
                & (LeadModel.claim_stage == stage.value)
                & unchanged,
            )

        if self._transaction(build):
            return LockResult.LOCKED
        if self.ledger.get(lead_id, stage.value) is not None:
            return LockResult.ALREADY_RECORDED
        return LockResult.LEAD_CHANGED

    def unlock_send(self, lead_id: str, stage: FollowUpStage) -> None:
        def build(transaction: TransactWrite) -> None:
            transaction.delete(LedgerModel(lead_id, stage.value), condition=LedgerModel.state == LedgerState.SENDING)
            transaction.update(
                LeadModel(lead_id),
                [LeadModel.schedule_state.set(ScheduleState.CLAIMED.value)],
                (LeadModel.schedule_state == ScheduleState.SENDING.value) & (LeadModel.claim_stage == stage.value),
            )

        self._transaction(build)

    def ledger_record(self, lead_id: str, stage: FollowUpStage) -> LedgerRecord | None:
        return self.ledger.get(lead_id, stage.value)

    def reserve_daily_slot(self, day: str, cap: int) -> bool:
        return self.ledger.reserve_daily_slot(day, cap)

    def sends_on(self, day: str) -> int:
        return self.ledger.sends_on(day)

    def confirm_send(self, lead_id: str, stage: FollowUpStage, event: str, message_id: str) -> bool:
        return self.ledger.confirm_send(lead_id, stage.value, event, message_id)

    def reject_after_send(self, lead_id: str, stage: FollowUpStage) -> None:
        self.ledger.reject_after_send(lead_id, stage.value)

    def suppress(self, email: str, reason: str, at: str) -> None:
        self.ledger.suppress(email, reason, at)

    def is_suppressed(self, email: str) -> bool:
        return self.ledger.is_suppressed(email)

    def lead_for_message(self, message_id: str) -> str | None:
        return self.ledger.lead_for_message(message_id)

    def lead_for_email(self, address: str) -> str | None:
        for candidate in dict.fromkeys([address.strip(), address.strip().lower()]):
            for row in LeadModel.email_index.query(candidate, limit=1):
                return str(row.id)
        return None

    @staticmethod
    def _advance(lead: Lead, stage: FollowUpStage, at: str, entry: dict[str, Any], next_due: bool) -> list[Any]:
        """The lead after a stage went out (or may have): next stage due from `at`, or done."""
        schedule = (
            [LeadModel.schedule_state.set(ScheduleState.DUE.value), LeadModel.schedule_at.set(at)]
            if next_due
            else [LeadModel.schedule_state.remove(), LeadModel.schedule_at.remove()]
        )
        return [
            *schedule,
            LeadModel.follow_up_stage.set(stage.value),
            LeadModel.last_contacted.set(at),
            LeadModel.eligible_for_reengagement.set(False),
            # Rewritten whole: foreign items may hold the history as a string.
            LeadModel.engagement_history.set([*lead.engagement_history, entry]),
            LeadModel.updated_at.set(format_time(utc_now())),
            LeadModel.claim_stage.remove(),
            LeadModel.claim_campaign.remove(),
        ]

    def record_sent(
        self, lead: Lead, stage: FollowUpStage, sent_at: str, entry: dict[str, Any], next_due: bool
    ) -> bool:
        message_id = str(entry.get("message_id", ""))

        def build(transaction: TransactWrite) -> None:
            transaction.update(
                LeadModel(lead.id),
                self._advance(lead, stage, sent_at, entry, next_due),
                (LeadModel.schedule_state == ScheduleState.SENDING.value) & (LeadModel.claim_stage == stage.value),
            )
            transaction.update(
                LedgerModel(lead.id, stage.value),
                [
                    LedgerModel.state.set(LedgerState.SENT),
                    LedgerModel.sent_at.set(sent_at),
                    LedgerModel.message_id.set(message_id),
                ],
                LedgerModel.state == LedgerState.SENDING,
            )

        # The token makes a retried commit of the same record a no-op instead of a failure.
        return self._transaction(build, token=_token(lead.id, stage.value, message_id))

    def record_failed(self, lead: Lead, stage: FollowUpStage, entry: dict[str, Any]) -> None:
        def build(transaction: TransactWrite) -> None:
            transaction.update(
                LeadModel(lead.id),
                [
                    LeadModel.schedule_state.remove(),
                    LeadModel.schedule_at.remove(),
                    LeadModel.claim_stage.remove(),
                    LeadModel.claim_campaign.remove(),
                    LeadModel.eligible_for_reengagement.set(False),
                    LeadModel.engagement_history.set([*lead.engagement_history, entry]),
                    LeadModel.updated_at.set(format_time(utc_now())),
                ],
                (LeadModel.schedule_state == ScheduleState.SENDING.value) & (LeadModel.claim_stage == stage.value),
            )
            transaction.update(
                LedgerModel(lead.id, stage.value),
                [LedgerModel.state.set(LedgerState.REJECTED)],
                LedgerModel.state == LedgerState.SENDING,
            )

        self._transaction(build)

    def settle_in_doubt(
        self, lead: Lead, stage: FollowUpStage, locked_at: str, entry: dict[str, Any], next_due: bool, state: str
    ) -> bool:
        """A send lock nobody released: record the stage as `state`, so it is never sent again."""

        def build(transaction: TransactWrite) -> None:
            transaction.update(
                LeadModel(lead.id),
                self._advance(lead, stage, locked_at, entry, next_due),
                (LeadModel.schedule_state == ScheduleState.SENDING.value)
                & (LeadModel.claim_stage == stage.value)
                & (LeadModel.schedule_at == locked_at),
            )
            transaction.update(
                LedgerModel(lead.id, stage.value),
                [LedgerModel.state.set(state)],
                LedgerModel.state == LedgerState.SENDING,
            )

        return self._transaction(build)

    def repair_from_ledger(
        self, lead: Lead, stage: FollowUpStage, record: LedgerRecord, entry: dict[str, Any], next_due: bool
    ) -> bool:
        """A lead claimed for a stage the ledger already holds (its stage was reset elsewhere): put it back."""
        at = record.sent_at or record.locked_at or format_time(utc_now())
        actions = (
            self._advance(lead, stage, at, entry, next_due)
            if record.state in (LedgerState.SENT, LedgerState.POSSIBLY_SENT)
            else [
                LeadModel.schedule_state.remove(),
                LeadModel.schedule_at.remove(),
                LeadModel.claim_stage.remove(),
                LeadModel.eligible_for_reengagement.set(False),
            ]
        )
        return self._update(
            lead.id,
            actions,
            (LeadModel.schedule_state == ScheduleState.CLAIMED.value) & (LeadModel.claim_stage == stage.value),
        )

    def put(self, lead: Lead, previous: Lead | None = None) -> bool:
        """Write a whole lead, only if nobody changed it since `previous` was read."""
        condition = LeadModel.id.does_not_exist() if previous is None else _unchanged_since(previous.updated_at)
        return conditionally(lambda: _to_model(lead).save(condition=condition))

    def put_many(self, leads: Iterable[Lead]) -> int:
        """Bulk-write new leads, 25 per BatchWriteItem, unconditionally (benchmarks and bulk loads only)."""
        written = 0
        with LeadModel.batch_write() as batch:
            for lead in leads:
                batch.save(_to_model(lead))
                written += 1
        return written

    def set_attributes(self, lead_id: str, values: dict[str, Any], previous_updated_at: str | None) -> bool:
        """Set plain attributes on one item, only if it is unchanged (used by migrate)."""
        attributes = LeadModel.get_attributes()
        actions = [
            attributes[name].remove() if value is None else attributes[name].set(value)
            for name, value in values.items()
        ]
        return self._update(lead_id, actions, _unchanged_since(previous_updated_at) & LeadModel.id.exists())
