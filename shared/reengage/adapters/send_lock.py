"""The send lock across both tables (DynamoDB transactions through pynamodb).

Taking the lock creates the ledger record for (lead, stage) and moves the lead to
`sending` in one transaction; recording the outcome moves both again in one
transaction. Every write is conditioned on the state the lock left, so a lock that was
lost (settled by a later run) is never overwritten.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from pynamodb.connection import Connection
from pynamodb.transactions import TransactWrite

from reengage.adapters.dynamo_errors import conditionally
from reengage.adapters.leads_table import LeadModel, bind_leads_table
from reengage.adapters.send_ledger import LedgerModel, bind_ledger_table
from reengage.domain.clock import format_time, utc_now
from reengage.domain.leads import FollowUpStage, Lead, ScheduleState
from reengage.ports import LedgerRecord, LedgerState, LockResult


def _token(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:36]


def _held(stage: FollowUpStage, locked_at: str | None = None) -> Any:
    """The lead is locked for `stage` (by the lock taken at `locked_at`, when given)."""
    condition = (LeadModel.schedule_state == ScheduleState.SENDING.value) & (LeadModel.claim_stage == stage.value)
    return condition & (LeadModel.schedule_at == locked_at) if locked_at else condition


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


class DynamoSendLock:
    """Satisfies `reengage.ports.SendLock`."""

    def __init__(self, leads_table_name: str, ledger_table_name: str) -> None:
        bind_leads_table(leads_table_name)
        bind_ledger_table(ledger_table_name)
        self._connection: Connection | None = None  # built on first use

    def _transaction(self, build: Callable[[TransactWrite], None], token: str | None = None) -> bool:
        """All-or-nothing writes across the leads table and the ledger; False when a condition failed."""
        if self._connection is None:
            self._connection = Connection()

        def commit() -> None:
            with TransactWrite(connection=self._connection, client_request_token=token) as transaction:
                build(transaction)

        return conditionally(commit)

    def lock(self, lead: Lead, stage: FollowUpStage, locked_at: str, campaign_id: str) -> LockResult:
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
        try:
            LedgerModel.get(lead_id, stage.value, consistent_read=True)
        except LedgerModel.DoesNotExist:
            return LockResult.LEAD_CHANGED
        return LockResult.ALREADY_RECORDED

    def unlock(self, lead_id: str, stage: FollowUpStage) -> None:
        def build(transaction: TransactWrite) -> None:
            transaction.delete(LedgerModel(lead_id, stage.value), condition=LedgerModel.state == LedgerState.SENDING)
            transaction.update(
                LeadModel(lead_id), [LeadModel.schedule_state.set(ScheduleState.CLAIMED.value)], _held(stage)
            )

        self._transaction(build)

    def record_sent(
        self, lead: Lead, stage: FollowUpStage, sent_at: str, entry: dict[str, Any], next_due: bool
    ) -> bool:
        message_id = str(entry.get("message_id", ""))

        def build(transaction: TransactWrite) -> None:
            transaction.update(LeadModel(lead.id), _advance(lead, stage, sent_at, entry, next_due), _held(stage))
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
                _held(stage),
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
        def build(transaction: TransactWrite) -> None:
            transaction.update(
                LeadModel(lead.id), _advance(lead, stage, locked_at, entry, next_due), _held(stage, locked_at)
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
            _advance(lead, stage, at, entry, next_due)
            if record.state in (LedgerState.SENT, LedgerState.POSSIBLY_SENT)
            else [
                LeadModel.schedule_state.remove(),
                LeadModel.schedule_at.remove(),
                LeadModel.claim_stage.remove(),
                LeadModel.eligible_for_reengagement.set(False),
            ]
        )
        claimed = (LeadModel.schedule_state == ScheduleState.CLAIMED.value) & (LeadModel.claim_stage == stage.value)
        return conditionally(
            lambda: LeadModel._get_connection().update_item(lead.id, actions=actions, condition=claimed)
        )
