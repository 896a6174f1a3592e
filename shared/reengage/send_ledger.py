"""The send ledger (DynamoDB through pynamodb): one record per lead and stage, written before the send.

The record's key is (lead_id, stage) and it is created with `attribute_not_exists`,
in the same transaction that takes the send lock on the lead (see lead_store.py). It
outlives any change to the lead itself, so even a lead whose stage another system
resets can never get a second email for a stage it already had. The same table keeps
the daily send counter behind MAX_SENDS_PER_DAY.
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from reengage.dynamo_errors import conditionally
from reengage.ports import LedgerRecord, LedgerState

DAILY_COUNTER_KEY = "#daily-sends"
SUPPRESSION_KEY = "#suppressed"  # sort key: the lowercased address


class MessageIndex(GlobalSecondaryIndex["LedgerModel"]):
    """Sparse: only sent records carry message_id. Replies name it in In-Reply-To."""

    class Meta:
        index_name = "MessageIndex"
        projection = KeysOnlyProjection()

    message_id = UnicodeAttribute(hash_key=True)


class LedgerModel(Model):
    class Meta:
        table_name = "unbound"  # set by DynamoSendLedger from settings

    lead_id = UnicodeAttribute(hash_key=True)
    stage = UnicodeAttribute(range_key=True)
    state = UnicodeAttribute(null=True)
    locked_at = UnicodeAttribute(null=True)
    sent_at = UnicodeAttribute(null=True)
    message_id = UnicodeAttribute(null=True)
    campaign_id = UnicodeAttribute(null=True)
    confirmed = UnicodeAttribute(null=True)
    sent_count = NumberAttribute(null=True)  # daily counter items only
    message_index = MessageIndex()


def bind_ledger(table_name: str) -> None:
    LedgerModel.Meta.table_name = table_name
    LedgerModel._connection = None


class DynamoSendLedger:
    """Reads of the ledger and the daily counter; the lead store writes records inside its transactions."""

    def __init__(self, table_name: str) -> None:
        bind_ledger(table_name)

    def get(self, lead_id: str, stage: str) -> LedgerRecord | None:
        try:
            item = LedgerModel.get(lead_id, stage, consistent_read=True)
        except LedgerModel.DoesNotExist:
            return None
        return LedgerRecord(
            item.lead_id,
            item.stage,
            item.state or "",
            item.locked_at or "",
            item.sent_at or "",
            item.message_id or "",
            item.confirmed or "",
        )

    def confirm_send(self, lead_id: str, stage: str, event: str, message_id: str) -> bool:
        conditionally(
            lambda: LedgerModel(lead_id, stage).update(
                actions=[LedgerModel.confirmed.set(event)], condition=LedgerModel.lead_id.exists()
            )
        )
        return conditionally(
            lambda: LedgerModel(lead_id, stage).update(
                actions=[LedgerModel.state.set(LedgerState.SENT), LedgerModel.message_id.set(message_id)],
                condition=LedgerModel.state == LedgerState.POSSIBLY_SENT,
            )
        )

    def reject_after_send(self, lead_id: str, stage: str) -> None:
        conditionally(
            lambda: LedgerModel(lead_id, stage).update(
                actions=[LedgerModel.state.set(LedgerState.REJECTED)], condition=LedgerModel.lead_id.exists()
            )
        )

    def reserve_daily_slot(self, day: str, cap: int) -> bool:
        """Count one send against `day`; False (and nothing counted) once `cap` sends are counted."""
        return conditionally(
            lambda: LedgerModel(DAILY_COUNTER_KEY, day).update(
                actions=[LedgerModel.sent_count.add(1)],
                condition=LedgerModel.sent_count.does_not_exist() | (LedgerModel.sent_count < cap),
            )
        )

    def sends_on(self, day: str) -> int:
        try:
            return int(LedgerModel.get(DAILY_COUNTER_KEY, day, consistent_read=True).sent_count or 0)
        except LedgerModel.DoesNotExist:
            return 0

    def suppress(self, email: str, reason: str, at: str) -> None:
        LedgerModel(SUPPRESSION_KEY, email.strip().lower(), state=reason, locked_at=at).save()

    def is_suppressed(self, email: str) -> bool:
        try:
            LedgerModel.get(SUPPRESSION_KEY, email.strip().lower(), consistent_read=True)
        except LedgerModel.DoesNotExist:
            return False
        return True

    def lead_for_message(self, message_id: str) -> str | None:
        for record in LedgerModel.message_index.query(message_id, limit=1):
            return str(record.lead_id)
        return None
