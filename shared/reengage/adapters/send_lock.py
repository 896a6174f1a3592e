"""The send lock across both tables (DynamoDB transactions through pynamodb).

Taking the lock creates the ledger record for (lead, stage) and the address's record for
the stage, and moves the lead to `sending`, in one transaction; recording a send is one
conditional write on the lead (the ledger record keeps its `sending` state: it says the stage
was locked, and the lead says whether it went out); a refusal or an abandoned lock moves the
lead and its ledger record together. Every write on the lead is
conditioned on the version it was read at and bumps it, so no write another job read
earlier can land in between unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from reengage.adapters.dynamo_errors import TRANSACTION_CANCELED, conditionally, raise_if_transient
from reengage.adapters.leads_table import (
    BUMP,
    UNSCHEDULED,
    LeadModel,
    bind_leads_table,
    scheduled,
    unchanged_since,
)
from reengage.adapters.send_ledger import (
    SUPPRESSION_KEY,
    AddressModel,
    LedgerModel,
    SuppressionModel,
    address_key,
    bind_ledger_table,
)
from reengage.domain.clock import format_time, utc_now
from reengage.domain.leads import FollowUpStage, Lead, ScheduleState, appended_history, normalized_address
from reengage.ports import LedgerRecord, LedgerState, LockResult

# The order of the lock transaction's items, which is the order of its cancellation reasons: pynamodb
# sends condition checks first, then deletes, puts and updates, each in the order they were added.
_LOCK_ITEMS = (LockResult.SUPPRESSED, LockResult.ALREADY_RECORDED, LockResult.ADDRESS_TAKEN, LockResult.LEAD_CHANGED)


def _held(stage: FollowUpStage, locked_at: str | None = None) -> Any:
    """The lead is locked for `stage` (by the lock taken at `locked_at`, when given)."""
    condition = (LeadModel.schedule_state == ScheduleState.SENDING.value) & (LeadModel.claim_stage == stage.value)
    return condition & (LeadModel.schedule_at == locked_at) if locked_at else condition


def _advance(lead: Lead, stage: FollowUpStage, at: str, entry: dict[str, Any], next_due_at: str | None) -> list[Any]:
    """The lead after a stage went out (or may have) at `at`: next stage due at `next_due_at`, or done."""
    schedule = scheduled(lead.id, ScheduleState.DUE, next_due_at) if next_due_at else UNSCHEDULED
    return [
        *schedule,
        LeadModel.follow_up_stage.set(stage.value),
        LeadModel.last_contacted.set(at),
        LeadModel.eligible_for_reengagement.set(False),
        # Rewritten whole (conditioned on the version it was read at): foreign items may hold the
        # history as a string, and the history is trimmed to stay far below the item size limit.
        LeadModel.engagement_history.set(appended_history(lead.engagement_history, entry)),
        LeadModel.updated_at.set(format_time(utc_now())),
        LeadModel.claim_stage.remove(),
        LeadModel.claim_campaign.remove(),
        BUMP,
    ]


def _failed_item(error: TransactWriteError) -> LockResult | None:
    """Which of the lock's conditions failed, from the transaction's cancellation reasons."""
    for result, reason in zip(_LOCK_ITEMS, error.cancellation_reasons, strict=False):
        if reason is not None and reason.code == "ConditionalCheckFailed":
            return result
    return None


class DynamoSendLock:
    """Satisfies `reengage.ports.SendLock`."""

    def __init__(self, leads_table_name: str, ledger_table_name: str, schedule_shards: int | None = None) -> None:
        bind_leads_table(leads_table_name, schedule_shards)
        bind_ledger_table(ledger_table_name)
        self.connection = Connection()  # its client is built on first use (or shared: wiring.stores)

    def _commit(self, build: Callable[[TransactWrite], None]) -> None:
        with TransactWrite(connection=self.connection) as transaction:
            build(transaction)

    def _transaction(self, build: Callable[[TransactWrite], None]) -> bool:
        """All-or-nothing writes across the leads table and the ledger; False when a condition failed."""
        return conditionally(lambda: self._commit(build))

    def lock(self, lead: Lead, stage: FollowUpStage, locked_at: str, campaign_id: str) -> LockResult:
        # What decides whether the email may go, as read: other systems may write the table directly
        # (without bumping the version), and a reply or an opt-out recorded meanwhile must win.
        as_read = (
            LeadModel.response_status == lead.response_status
            if lead.response_status
            else LeadModel.response_status.does_not_exist()
        ) & (LeadModel.email == lead.email)
        if lead.suppressed:
            as_read &= LeadModel.suppressed == True  # noqa: E712 - a pynamodb condition, not a comparison
        else:
            as_read &= LeadModel.suppressed.does_not_exist() | (LeadModel.suppressed == False)  # noqa: E712

        def build(transaction: TransactWrite) -> None:
            transaction.save(
                LedgerModel(
                    lead.id, stage.value, state=LedgerState.SENDING, locked_at=locked_at, campaign_id=campaign_id
                ),
                condition=LedgerModel.lead_id.does_not_exist(),
            )
            transaction.save(
                AddressModel(address_key(lead.email), stage.value, lead=lead.id, locked_at=locked_at),
                condition=AddressModel.key.does_not_exist() | (AddressModel.lead == lead.id),
            )
            transaction.update(
                LeadModel(lead.id),
                [*scheduled(lead.id, ScheduleState.SENDING, locked_at), BUMP],
                (LeadModel.schedule_state == ScheduleState.CLAIMED.value)
                & (LeadModel.claim_stage == stage.value)
                & unchanged_since(lead.version)
                & as_read,
            )
            # The address is not suppressed now: an unsubscribe, bounce or complaint on another record
            # of this person, landing after the sender read the list, stops this email too.
            transaction.condition_check(
                SuppressionModel,
                SUPPRESSION_KEY,
                normalized_address(lead.email),
                condition=SuppressionModel.key.does_not_exist(),
            )

        try:
            self._commit(build)
        except TransactWriteError as error:
            raise_if_transient(error)
            if error.cause_response_code != TRANSACTION_CANCELED:
                raise
            return _failed_item(error) or self._which_failed(lead, stage)
        return LockResult.LOCKED

    def _which_failed(self, lead: Lead, stage: FollowUpStage) -> LockResult:
        """Which of the lock's conditions failed, read back (when no cancellation reasons came)."""
        try:
            LedgerModel.get(lead.id, stage.value, consistent_read=True)
            return LockResult.ALREADY_RECORDED
        except LedgerModel.DoesNotExist:
            pass
        try:
            holder = AddressModel.get(address_key(lead.email), stage.value, consistent_read=True)
            if holder.lead != lead.id:
                return LockResult.ADDRESS_TAKEN
        except AddressModel.DoesNotExist:
            pass
        try:
            SuppressionModel.get(SUPPRESSION_KEY, normalized_address(lead.email), consistent_read=True)
            return LockResult.SUPPRESSED
        except SuppressionModel.DoesNotExist:
            return LockResult.LEAD_CHANGED

    def unlock(self, lead: Lead, stage: FollowUpStage) -> None:
        def build(transaction: TransactWrite) -> None:
            transaction.delete(LedgerModel(lead.id, stage.value), condition=LedgerModel.state == LedgerState.SENDING)
            transaction.delete(
                AddressModel(address_key(lead.email), stage.value), condition=AddressModel.lead == lead.id
            )
            transaction.update(LeadModel(lead.id), [*scheduled(lead.id, ScheduleState.CLAIMED), BUMP], _held(stage))

        self._transaction(build)

    def record_sent(
        self, lead: Lead, stage: FollowUpStage, sent_at: str, entry: dict[str, Any], next_due_at: str | None
    ) -> bool:
        # One conditional write on the lead, not a transaction with the ledger: the ledger record made
        # by the lock already stops a second email for this stage, and SES's Delivery event notes the
        # message id on it. A lock nobody records is settled by the scheduler (settle_in_doubt).
        return conditionally(
            lambda: LeadModel._get_connection().update_item(
                lead.id,
                actions=_advance(lead, stage, sent_at, entry, next_due_at),
                condition=_held(stage) & unchanged_since(lead.version),
            )
        )

    def record_failed(self, lead: Lead, stage: FollowUpStage, entry: dict[str, Any]) -> None:
        def build(transaction: TransactWrite) -> None:
            transaction.update(
                LeadModel(lead.id),
                [
                    *UNSCHEDULED,
                    LeadModel.claim_stage.remove(),
                    LeadModel.claim_campaign.remove(),
                    LeadModel.eligible_for_reengagement.set(False),
                    LeadModel.engagement_history.set(appended_history(lead.engagement_history, entry)),
                    LeadModel.updated_at.set(format_time(utc_now())),
                    BUMP,
                ],
                _held(stage) & unchanged_since(lead.version),
            )
            transaction.update(
                LedgerModel(lead.id, stage.value),
                [LedgerModel.state.set(LedgerState.REJECTED)],
                LedgerModel.state == LedgerState.SENDING,
            )

        self._transaction(build)

    def settle_in_doubt(
        self,
        lead: Lead,
        stage: FollowUpStage,
        locked_at: str,
        entry: dict[str, Any],
        next_due_at: str | None,
        state: str,
    ) -> bool:
        def build(transaction: TransactWrite) -> None:
            transaction.update(
                LeadModel(lead.id),
                _advance(lead, stage, locked_at, entry, next_due_at),
                _held(stage, locked_at) & unchanged_since(lead.version),
            )
            # "Possibly sent" only while SES has not confirmed it: a Delivery noted since the ledger was
            # read fails the settlement, and the next run settles it as sent.
            unconfirmed = LedgerModel.confirmed.does_not_exist() if state == LedgerState.POSSIBLY_SENT else None
            condition = LedgerModel.state == LedgerState.SENDING
            transaction.update(
                LedgerModel(lead.id, stage.value),
                [LedgerModel.state.set(state)],
                condition & unconfirmed if unconfirmed is not None else condition,
            )

        return self._transaction(build)

    def repair_from_ledger(
        self, lead: Lead, stage: FollowUpStage, record: LedgerRecord, entry: dict[str, Any], next_due_at: str | None
    ) -> bool:
        """A lead claimed for a stage the ledger already holds (its stage was reset elsewhere): put it back."""
        at = record.sent_at or record.locked_at or format_time(utc_now())
        actions = (
            _advance(lead, stage, at, entry, next_due_at)
            # A `sending` record whose lead is claimed again: the send was recorded on the lead (or is
            # still in flight) and the lead was reset since; either way the stage counts as had.
            if record.state in (LedgerState.SENT, LedgerState.POSSIBLY_SENT, LedgerState.SENDING)
            else [
                *UNSCHEDULED,
                LeadModel.claim_stage.remove(),
                LeadModel.eligible_for_reengagement.set(False),
                BUMP,
            ]
        )
        claimed = (
            (LeadModel.schedule_state == ScheduleState.CLAIMED.value)
            & (LeadModel.claim_stage == stage.value)
            & unchanged_since(lead.version)
        )
        return conditionally(
            lambda: LeadModel._get_connection().update_item(lead.id, actions=actions, condition=claimed)
        )
