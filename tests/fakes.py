"""In-memory implementations of the service ports, with the same conditional semantics as DynamoDB."""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from reengage.leads import FollowUpStage, Lead, ScheduleState
from reengage.ports import (
    FollowUpRequest,
    LedgerRecord,
    LedgerState,
    LockResult,
    OutgoingEmail,
    QueryStats,
    ScheduleEntry,
)

T = TypeVar("T")


def _atomic(method: Callable[..., T]) -> Callable[..., T]:
    """Conditional writes are atomic in DynamoDB: check and write under one lock here."""

    @functools.wraps(method)
    def locked(self: InMemoryLeadStore, *args: Any, **kwargs: Any) -> T:
        with self.lock:
            return method(self, *args, **kwargs)

    return locked


class InMemoryLeadStore:
    """Satisfies reengage.ports.LeadStore."""

    def __init__(self, leads: Sequence[Lead] = ()) -> None:
        self.leads: dict[str, Lead] = {lead.id: copy.deepcopy(lead) for lead in leads}
        self.query_stats = QueryStats()
        self.lock = threading.RLock()
        self.ledger: dict[tuple[str, str], LedgerRecord] = {}
        self.daily_sends: dict[str, int] = {}
        self.suppressed: dict[str, str] = {}

    def get(self, lead_id: str) -> Lead | None:
        lead = self.leads.get(lead_id)
        return copy.deepcopy(lead) if lead else None

    def schedule(self, state: ScheduleState, until: str, page_size: int | None = None) -> Iterator[ScheduleEntry]:
        self.query_stats.calls += 1
        rows = sorted(
            (
                lead
                for lead in self.leads.values()
                if lead.schedule_state == state and (lead.schedule_at or "") <= until
            ),
            key=lambda lead: lead.schedule_at or "",
        )
        self.query_stats.items_examined += len(rows)
        for lead in rows:
            yield ScheduleEntry(lead.id, state, lead.schedule_at or "", lead.follow_up_stage, lead.email)

    def _matches(
        self, lead_id: str, state: ScheduleState, at: str | None = None, stage: str | None = None
    ) -> Lead | None:
        lead = self.leads.get(lead_id)
        if lead is None or lead.schedule_state != state:
            return None
        if at is not None and lead.schedule_at != at:
            return None
        if stage is not None and lead.claim_stage != stage:
            return None
        return lead

    @_atomic
    def claim(self, entry: ScheduleEntry, stage: FollowUpStage, claimed_at: str, campaign_id: str) -> bool:
        lead = self._matches(entry.lead_id, entry.state, at=entry.at)
        if lead is None:
            return False
        lead.schedule_state, lead.schedule_at, lead.claim_stage = ScheduleState.CLAIMED, claimed_at, stage.value
        lead.eligible_for_reengagement = True
        lead.updated_at = claimed_at
        return True

    @_atomic
    def unschedule(self, entry: ScheduleEntry) -> bool:
        lead = self._matches(entry.lead_id, entry.state, at=entry.at)
        if lead is None:
            return False
        lead.schedule_state = lead.schedule_at = None
        return True

    @_atomic
    def release_claim(self, lead_id: str, stage: FollowUpStage, due_at: str | None) -> bool:
        lead = self._matches(lead_id, ScheduleState.CLAIMED, stage=stage.value)
        if lead is None:
            return False
        lead.schedule_state, lead.schedule_at = (ScheduleState.DUE, due_at) if due_at else (None, None)
        lead.claim_stage = None
        lead.eligible_for_reengagement = False
        return True

    @_atomic
    def lock_for_send(self, read: Lead, stage: FollowUpStage, locked_at: str, campaign_id: str) -> LockResult:
        lead_id = read.id
        if (lead_id, stage.value) in self.ledger:
            return LockResult.ALREADY_RECORDED
        lead = self._matches(lead_id, ScheduleState.CLAIMED, stage=stage.value)
        unchanged = lead is not None and (lead.response_status, lead.email, lead.suppressed) == (
            read.response_status,
            read.email,
            read.suppressed,
        )
        if lead is None or not unchanged:
            return LockResult.LEAD_CHANGED
        self.ledger[(lead_id, stage.value)] = LedgerRecord(lead_id, stage.value, LedgerState.SENDING, locked_at)
        lead.schedule_state, lead.schedule_at = ScheduleState.SENDING, locked_at
        return LockResult.LOCKED

    @_atomic
    def unlock_send(self, lead_id: str, stage: FollowUpStage) -> None:
        lead = self._matches(lead_id, ScheduleState.SENDING, stage=stage.value)
        record = self.ledger.get((lead_id, stage.value))
        if lead is not None and record is not None and record.state == LedgerState.SENDING:
            del self.ledger[(lead_id, stage.value)]
            lead.schedule_state = ScheduleState.CLAIMED

    def ledger_record(self, lead_id: str, stage: FollowUpStage) -> LedgerRecord | None:
        return self.ledger.get((lead_id, stage.value))

    @_atomic
    def reserve_daily_slot(self, day: str, cap: int) -> bool:
        if self.daily_sends.get(day, 0) >= cap:
            return False
        self.daily_sends[day] = self.daily_sends.get(day, 0) + 1
        return True

    def sends_on(self, day: str) -> int:
        return self.daily_sends.get(day, 0)

    @_atomic
    def confirm_send(self, lead_id: str, stage: FollowUpStage, event: str, message_id: str) -> bool:
        record = self.ledger.get((lead_id, stage.value))
        if record is None:
            return False
        resolved = record.state == LedgerState.POSSIBLY_SENT
        self.ledger[(lead_id, stage.value)] = replace(
            record, confirmed=event, state=LedgerState.SENT if resolved else record.state
        )
        return resolved

    def reject_after_send(self, lead_id: str, stage: FollowUpStage) -> None:
        record = self.ledger.get((lead_id, stage.value))
        if record is not None:
            self.ledger[(lead_id, stage.value)] = replace(record, state=LedgerState.REJECTED)

    def suppress(self, email: str, reason: str, at: str) -> None:
        self.suppressed[email.strip().lower()] = reason

    def is_suppressed(self, email: str) -> bool:
        return email.strip().lower() in self.suppressed

    def lead_for_message(self, message_id: str) -> str | None:
        return next((r.lead_id for r in self.ledger.values() if r.message_id and r.message_id == message_id), None)

    def lead_for_email(self, address: str) -> str | None:
        return next((lead.id for lead in self.leads.values() if lead.email.lower() == address.lower()), None)

    def _advance(self, stored: Lead, lead: Lead, stage: FollowUpStage, at: str, entry: dict[str, Any], next_due: bool):
        stored.schedule_state, stored.schedule_at = (ScheduleState.DUE, at) if next_due else (None, None)
        stored.follow_up_stage = stage.value
        stored.last_contacted = at
        stored.eligible_for_reengagement = False
        stored.engagement_history = [*lead.engagement_history, entry]
        stored.updated_at = at
        stored.claim_stage = None

    @_atomic
    def record_sent(
        self, lead: Lead, stage: FollowUpStage, sent_at: str, entry: dict[str, Any], next_due: bool
    ) -> bool:
        stored = self._matches(lead.id, ScheduleState.SENDING, stage=stage.value)
        if stored is None:
            return False
        self._advance(stored, lead, stage, sent_at, entry, next_due)
        self.ledger[(lead.id, stage.value)] = replace(
            self.ledger[(lead.id, stage.value)],
            state=LedgerState.SENT,
            sent_at=sent_at,
            message_id=str(entry.get("message_id", "")),
        )
        return True

    @_atomic
    def record_failed(self, lead: Lead, stage: FollowUpStage, entry: dict[str, Any]) -> None:
        stored = self._matches(lead.id, ScheduleState.SENDING, stage=stage.value)
        if stored is not None:
            stored.schedule_state = stored.schedule_at = stored.claim_stage = None
            stored.eligible_for_reengagement = False
            stored.engagement_history = [*lead.engagement_history, entry]
            self.ledger[(lead.id, stage.value)] = replace(
                self.ledger[(lead.id, stage.value)], state=LedgerState.REJECTED
            )

    @_atomic
    def settle_in_doubt(
        self, lead: Lead, stage: FollowUpStage, locked_at: str, entry: dict[str, Any], next_due: bool, state: str
    ) -> bool:
        stored = self._matches(lead.id, ScheduleState.SENDING, at=locked_at, stage=stage.value)
        if stored is None:
            return False
        self._advance(stored, lead, stage, locked_at, entry, next_due)
        self.ledger[(lead.id, stage.value)] = replace(self.ledger[(lead.id, stage.value)], state=state)
        return True

    @_atomic
    def repair_from_ledger(
        self, lead: Lead, stage: FollowUpStage, record: LedgerRecord, entry: dict[str, Any], next_due: bool
    ) -> bool:
        stored = self._matches(lead.id, ScheduleState.CLAIMED, stage=stage.value)
        if stored is None:
            return False
        if record.state in (LedgerState.SENT, LedgerState.POSSIBLY_SENT):
            self._advance(stored, lead, stage, record.sent_at or record.locked_at, entry, next_due)
        else:
            stored.schedule_state = stored.schedule_at = stored.claim_stage = None
            stored.eligible_for_reengagement = False
        return True

    @_atomic
    def put(self, lead: Lead, previous: Lead | None = None) -> bool:
        current = self.leads.get(lead.id)
        if (previous is None) != (current is None):
            return False
        if previous is not None and current is not None and previous.updated_at != current.updated_at:
            return False
        self.leads[lead.id] = copy.deepcopy(lead)
        return True

    def scan(self) -> Iterator[Lead]:
        yield from (copy.deepcopy(lead) for lead in self.leads.values())


class RecordingQueue:
    """Satisfies reengage.ports.FollowUpQueue; `refuse` lists lead ids whose messages fail."""

    def __init__(self, refuse: Sequence[str] = ()) -> None:
        self.messages: list[FollowUpRequest] = []
        self.batches: list[int] = []
        self.refuse = set(refuse)

    def enqueue(self, requests: Sequence[FollowUpRequest]) -> list[FollowUpRequest]:
        failed = []
        for start in range(0, len(requests), 10):
            batch = list(requests[start : start + 10])
            self.batches.append(len(batch))
            for request in batch:
                if request.lead_id in self.refuse:
                    failed.append(request)
                else:
                    self.messages.append(request)
        return failed


class RecordingMailer:
    """Satisfies reengage.ports.Mailer; `fail_with` makes the next sends raise."""

    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self.fail_with: Exception | None = None

    def send(self, email: OutgoingEmail) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(email)
        return f"msg-{len(self.sent)}"


def with_changes(lead: Lead, **changes: Any) -> Lead:
    return replace(copy.deepcopy(lead), **changes)
