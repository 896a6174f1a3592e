"""The send-ledger table (DynamoDB through pynamodb): the ledger, the daily send count, the suppression list.

A ledger record's key is (lead_id, stage); it is created with `attribute_not_exists`, in
the same transaction that takes the send lock on the lead (adapters/send_lock.py). It
outlives any change to the lead itself, so even a lead whose stage another system
resets can never get a second email for a stage it already had. The same table keeps
the daily send counter behind MAX_SENDS_PER_DAY and the suppressed addresses, each as
its own item type under a reserved partition key.

The daily counter is split over SCHEDULE_SHARDS items (`#daily-sends#<k>`), each allowed
its share of the cap (the shares add up to the cap exactly), so no single item takes a
write for every email sent.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from functools import partial
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from reengage.adapters.dynamo_errors import conditionally
from reengage.domain.leads import FollowUpStage, normalized_address
from reengage.ports import LedgerRecord, LedgerState, Reservation

DAILY_COUNTER_KEY = "#daily-sends"  # + "#<shard>"
# Fixed, not the schedule's shard count: a day's counts must stay readable, and each shard's share of
# the cap the same, when ScheduleShards is changed in the middle of a day.
DAILY_COUNTER_SHARDS = 16
SUPPRESSION_KEY = "#suppressed"  # sort key: the normalized address
ADDRESS_PREFIX = "#address#"  # + the normalized address; sort key: the stage


class MessageIndex(GlobalSecondaryIndex["LedgerModel"]):
    """Sparse: only sent records carry message_id. Replies name it in In-Reply-To."""

    class Meta:
        index_name = "MessageIndex"
        projection = KeysOnlyProjection()

    message_id = UnicodeAttribute(hash_key=True)


class LedgerModel(Model):
    """One record per lead and stage."""

    class Meta:
        table_name = "unbound"  # set by bind_ledger_table from settings

    lead_id = UnicodeAttribute(hash_key=True)
    stage = UnicodeAttribute(range_key=True)
    state = UnicodeAttribute(null=True)
    locked_at = UnicodeAttribute(null=True)
    sent_at = UnicodeAttribute(null=True)
    message_id = UnicodeAttribute(null=True)
    campaign_id = UnicodeAttribute(null=True)
    confirmed = UnicodeAttribute(null=True)
    message_index = MessageIndex()


class DailySendsModel(Model):
    """The sends counted against one UTC day: key (#daily-sends, day)."""

    class Meta:
        table_name = "unbound"

    key = UnicodeAttribute(hash_key=True, attr_name="lead_id")
    day = UnicodeAttribute(range_key=True, attr_name="stage")
    sent_count = NumberAttribute(null=True)


class SuppressionModel(Model):
    """An address never mailed again: key (#suppressed, lowercased address)."""

    class Meta:
        table_name = "unbound"

    key = UnicodeAttribute(hash_key=True, attr_name="lead_id")
    address = UnicodeAttribute(range_key=True, attr_name="stage")
    reason = UnicodeAttribute(null=True)
    suppressed_at = UnicodeAttribute(null=True)


class AddressModel(Model):
    """One person, one sequence: which lead's send of a stage went to this address. Written in the
    send lock's transaction, so two leads with one address never both get a stage."""

    class Meta:
        table_name = "unbound"

    key = UnicodeAttribute(hash_key=True, attr_name="lead_id")
    stage = UnicodeAttribute(range_key=True)
    lead = UnicodeAttribute(null=True)
    locked_at = UnicodeAttribute(null=True)


def address_key(email: str) -> str:
    return ADDRESS_PREFIX + normalized_address(email)


def bind_ledger_table(table_name: str) -> None:
    for model in (LedgerModel, DailySendsModel, SuppressionModel, AddressModel):
        model.Meta.table_name = table_name
        model._connection = None


def to_record(item: LedgerModel) -> LedgerRecord:
    return LedgerRecord(
        item.lead_id,
        item.stage,
        item.state or "",
        item.locked_at or "",
        item.sent_at or "",
        item.message_id or "",
        item.confirmed or "",
    )


class DynamoSendLedger:
    """Ledger reads and SES-event updates. Satisfies `reengage.ports.SendLedger`."""

    def __init__(self, table_name: str) -> None:
        bind_ledger_table(table_name)

    def record(self, lead_id: str, stage: FollowUpStage) -> LedgerRecord | None:
        try:
            return to_record(LedgerModel.get(lead_id, stage.value, consistent_read=True))
        except LedgerModel.DoesNotExist:
            return None

    def lead_for_message(self, message_id: str) -> str | None:
        for record in LedgerModel.message_index.query(message_id, limit=1):
            return str(record.lead_id)
        return None

    def confirm(self, lead_id: str, stage: FollowUpStage, event: str, message_id: str) -> bool | None:
        record = LedgerModel(lead_id, stage.value)
        actions: list[Action] = [LedgerModel.confirmed.set(event)]
        if message_id:  # the id SES assigned, for replies that name it (MessageIndex); the first one stays
            actions.append(LedgerModel.message_id.set(LedgerModel.message_id | message_id))
        noted = conditionally(lambda: record.update(actions=actions, condition=LedgerModel.lead_id.exists()))
        if not noted:
            return None
        # One write: the update returns the record, and only a send in doubt needs a second one.
        if record.state != LedgerState.POSSIBLY_SENT:
            return False
        return conditionally(
            lambda: record.update(
                actions=[LedgerModel.state.set(LedgerState.SENT)],
                condition=LedgerModel.state == LedgerState.POSSIBLY_SENT,
            )
        )

    def reject_after_send(self, lead_id: str, stage: FollowUpStage) -> None:
        conditionally(
            lambda: LedgerModel(lead_id, stage.value).update(
                actions=[LedgerModel.state.set(LedgerState.REJECTED)], condition=LedgerModel.lead_id.exists()
            )
        )


def shard_caps(cap: int, shards: int) -> list[int]:
    """Each counter shard's share of the daily cap: as equal as can be, adding up to the cap."""
    return [cap // shards + (1 if shard < cap % shards else 0) for shard in range(shards)]


class DynamoQuota:
    """The daily send cap, counted over `shards` items. Satisfies `reengage.ports.Quota`."""

    def __init__(self, table_name: str, shards: int = DAILY_COUNTER_SHARDS) -> None:
        bind_ledger_table(table_name)
        self.shards = shards

    def _counter(self, shard: int, day: str) -> DailySendsModel:
        return DailySendsModel(f"{DAILY_COUNTER_KEY}#{shard}", day)

    def reserve(self, day: str, cap: int) -> bool:
        """One conditional add on a random shard with room; the next shards when it is full."""
        return self.reserve_up_to(day, cap, 1) is not None

    def _count(self, shard: int, day: str, shard_cap: int, count: int = 1) -> Any:
        room = DailySendsModel.sent_count <= shard_cap - count
        return self._counter(shard, day).update(
            actions=[DailySendsModel.sent_count.add(count)],
            condition=(DailySendsModel.sent_count.does_not_exist() | room) if count <= shard_cap else room,
        )

    def reserve_up_to(self, day: str, cap: int, count: int) -> Reservation | None:
        """`count` sends in one conditional add on a random shard with room for all of them (a sender
        reserves its batch once, not once per email); else one send, the way `reserve` counts it."""
        caps = shard_caps(cap, self.shards)
        shard = random.randrange(self.shards)  # noqa: S311 - spreading writes, not security
        if count > 1 and caps[shard] >= count and conditionally(partial(self._count, shard, day, caps[shard], count)):
            return Reservation(day, shard, count, uuid.uuid4().hex)
        first = random.randrange(self.shards)  # noqa: S311
        for step in range(self.shards):
            shard = (first + step) % self.shards
            if caps[shard] and conditionally(partial(self._count, shard, day, caps[shard])):
                return Reservation(day, shard, 1, uuid.uuid4().hex)
        return None

    def release(self, reservation: Reservation, unused: int) -> None:
        """A transaction of one write, for its ClientRequestToken: an SDK retry after a lost answer is a
        no-op in DynamoDB, where a plain ADD would give the sends back twice (and let the cap be passed)."""
        if unused <= 0:
            return
        counter = self._counter(reservation.shard, reservation.day)
        with TransactWrite(
            connection=DailySendsModel._get_connection().connection, client_request_token=reservation.token
        ) as transaction:
            transaction.update(counter, actions=[DailySendsModel.sent_count.add(-unused)])

    def used(self, day: str) -> int:
        """Every shard's count, in one BatchGetItem."""
        keys = [(f"{DAILY_COUNTER_KEY}#{shard}", day) for shard in range(self.shards)]
        return sum(int(item.sent_count or 0) for item in DailySendsModel.batch_get(keys))


class DynamoSuppression:
    """The suppression list. Satisfies `reengage.ports.Suppression`."""

    def __init__(self, table_name: str) -> None:
        bind_ledger_table(table_name)

    def suppress(self, email: str, reason: str, at: str) -> None:
        SuppressionModel(SUPPRESSION_KEY, normalized_address(email), reason=reason, suppressed_at=at).save()

    def is_suppressed(self, email: str) -> bool:
        try:
            SuppressionModel.get(SUPPRESSION_KEY, normalized_address(email), consistent_read=True)
        except SuppressionModel.DoesNotExist:
            return False
        return True

    def suppressed_among(self, emails: Sequence[str]) -> set[str]:
        keys = [(SUPPRESSION_KEY, address) for address in dict.fromkeys(map(normalized_address, emails))]
        return {str(item.address) for item in SuppressionModel.batch_get(keys, consistent_read=True)} if keys else set()
