"""In-memory implementations of the service ports, with the same conditional semantics as DynamoDB.

`InMemoryTables` holds the state of the two tables; `tables.stores` gives the small port
fakes over it. Every conditional write checks and writes under one lock, as DynamoDB does.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from reengage.domain.companies import company_key
from reengage.domain.knowledge import load_knowledge_file
from reengage.domain.leads import FollowUpStage, Lead, ScheduleState, appended_history, normalized_address
from reengage.domain.messages import OutgoingEmail, TemplateWriter
from reengage.ports import (
    FollowUpRequest,
    LedgerRecord,
    LedgerState,
    LockResult,
    Reservation,
    ScheduleEntry,
    Stores,
    UnreadableLead,
)


class InMemoryTables:
    """The leads table and the send-ledger table (records, daily counts, suppressed addresses)."""

    def __init__(self, leads: Sequence[Lead] = ()) -> None:
        self.leads: dict[str, Lead] = {lead.id: copy.deepcopy(lead) for lead in leads}
        self.ledger: dict[tuple[str, str], LedgerRecord] = {}
        self.addresses: dict[tuple[str, str], str] = {}  # (normalized address, stage) -> lead id
        self.daily_sends: dict[str, int] = {}
        self.suppressed: dict[str, str] = {}
        self.lock = threading.RLock()
        self.stores = Stores(
            leads=FakeLeads(self),
            schedule=FakeSchedule(self),
            send_lock=FakeSendLock(self),
            ledger=FakeLedger(self),
            quota=FakeQuota(self),
            suppression=FakeSuppression(self),
        )

    def held(
        self,
        lead_id: str,
        state: ScheduleState,
        at: str | None = None,
        stage: str | None = None,
        version: int | None = None,
    ) -> Lead | None:
        """The stored lead when it is in `state` (at `at`, for `stage`, at `version`), else None; the
        caller is about to write it, so its version is bumped."""
        lead = self.leads.get(lead_id)
        if lead is None or lead.schedule_state != state:
            return None
        if at is not None and lead.schedule_at != at:
            return None
        if stage is not None and lead.claim_stage != stage:
            return None
        if version is not None and lead.version != version:
            return None
        lead.version += 1
        return lead

    def is_suppressed(self, email: str) -> bool:
        return normalized_address(email) in self.suppressed


@dataclass
class FakeLeads:
    tables: InMemoryTables

    def get(self, lead_id: str) -> Lead | None:
        lead = self.tables.leads.get(lead_id)
        return copy.deepcopy(lead) if lead else None

    def put(self, lead: Lead, previous: Lead | None = None) -> bool:
        with self.tables.lock:
            current = self.tables.leads.get(lead.id)
            if (previous is None) != (current is None):
                return False
            if previous is not None and current is not None and previous.version != current.version:
                return False
            self.tables.leads[lead.id] = replace(copy.deepcopy(lead), version=(previous.version if previous else 0) + 1)
            return True

    def get_many(self, lead_ids: Sequence[str]) -> dict[str, Lead | UnreadableLead]:
        return {lead_id: lead for lead_id in lead_ids if (lead := self.get(lead_id)) is not None}

    def put_all(self, writes: Sequence[tuple[Lead, Lead | None]]) -> list[bool]:
        return [self.put(lead, previous) for lead, previous in writes]

    def find_by_email(self, address: str) -> str | None:
        wanted = address.lower()
        return next((lead.id for lead in self.tables.leads.values() if lead.email.lower() == wanted), None)

    def colleagues(self, company: str) -> list[str]:
        return [
            lead.id for lead in self.tables.leads.values() if company_key(lead.email, lead.company_website) == company
        ]

    def scan(self) -> Iterator[Lead | UnreadableLead]:
        yield from (copy.deepcopy(lead) for lead in list(self.tables.leads.values()))

    def set_attributes(self, lead_id: str, values: Mapping[str, Any], previous_version: int) -> bool:
        with self.tables.lock:
            lead = self.tables.leads.get(lead_id)
            if lead is None or lead.version != previous_version:
                return False
            self.tables.leads[lead_id] = replace(lead, **values, version=lead.version + 1)
            return True


@dataclass
class FakeSchedule:
    tables: InMemoryTables

    def entries(self, state: ScheduleState, until: str) -> Iterator[ScheduleEntry]:
        rows = sorted(
            (
                lead
                for lead in self.tables.leads.values()
                if lead.schedule_state == state and (lead.schedule_at or "") <= until
            ),
            key=lambda lead: lead.schedule_at or "",
        )
        for lead in rows:
            yield ScheduleEntry(lead.id, state, lead.schedule_at or "", lead.follow_up_stage, lead.email)

    def claim(self, entry: ScheduleEntry, stage: FollowUpStage, claimed_at: str, campaign_id: str) -> bool:
        with self.tables.lock:
            lead = self.tables.held(entry.lead_id, entry.state, at=entry.at)
            if lead is None:
                return False
            lead.schedule_state, lead.schedule_at, lead.claim_stage = ScheduleState.CLAIMED, claimed_at, stage.value
            lead.eligible_for_reengagement = True
            lead.updated_at = claimed_at
            return True

    def unschedule(self, entry: ScheduleEntry) -> bool:
        with self.tables.lock:
            lead = self.tables.held(entry.lead_id, entry.state, at=entry.at)
            if lead is None:
                return False
            lead.schedule_state = lead.schedule_at = None
            return True

    def set_aside(self, lead_id: str, problem: str) -> bool:
        with self.tables.lock:
            lead = self.tables.leads.get(lead_id)
            if lead is None or lead.schedule_state == ScheduleState.SENDING:
                return False
            lead.schedule_state, lead.claim_stage, lead.version = ScheduleState.INVALID, None, lead.version + 1
            return True

    def release_claim(self, lead_id: str, stage: FollowUpStage, due_at: str | None) -> bool:
        with self.tables.lock:
            lead = self.tables.held(lead_id, ScheduleState.CLAIMED, stage=stage.value)
            if lead is None:
                return False
            lead.schedule_state, lead.schedule_at = (ScheduleState.DUE, due_at) if due_at else (None, None)
            lead.claim_stage = None
            lead.eligible_for_reengagement = False
            return True


def _advance(
    stored: Lead, read: Lead, stage: FollowUpStage, at: str, entry: dict[str, Any], next_due_at: str | None
) -> None:
    stored.schedule_state, stored.schedule_at = (ScheduleState.DUE, next_due_at) if next_due_at else (None, None)
    stored.follow_up_stage = stage.value
    stored.last_contacted = at
    stored.eligible_for_reengagement = False
    stored.engagement_history = appended_history(read.engagement_history, entry)
    stored.updated_at = at
    stored.claim_stage = None


@dataclass
class FakeSendLock:
    tables: InMemoryTables

    def lock(self, read: Lead, stage: FollowUpStage, locked_at: str, campaign_id: str) -> LockResult:
        with self.tables.lock:
            if (read.id, stage.value) in self.tables.ledger:
                return LockResult.ALREADY_RECORDED
            address = (normalized_address(read.email), stage.value)
            if self.tables.addresses.get(address, read.id) != read.id:
                return LockResult.ADDRESS_TAKEN
            current = self.tables.leads.get(read.id)
            as_read = (read.response_status, read.email, read.suppressed)
            if current is None or (current.response_status, current.email, current.suppressed) != as_read:
                return LockResult.LEAD_CHANGED
            lead = self.tables.held(read.id, ScheduleState.CLAIMED, stage=stage.value, version=read.version)
            if lead is None:
                return LockResult.LEAD_CHANGED
            if self.tables.is_suppressed(read.email):
                return LockResult.SUPPRESSED
            self.tables.ledger[(read.id, stage.value)] = LedgerRecord(
                read.id, stage.value, LedgerState.SENDING, locked_at
            )
            self.tables.addresses[address] = read.id
            lead.schedule_state, lead.schedule_at = ScheduleState.SENDING, locked_at
            return LockResult.LOCKED

    def unlock(self, read: Lead, stage: FollowUpStage) -> None:
        with self.tables.lock:
            record = self.tables.ledger.get((read.id, stage.value))
            if record is None or record.state != LedgerState.SENDING:
                return
            lead = self.tables.held(read.id, ScheduleState.SENDING, stage=stage.value)
            if lead is not None:
                del self.tables.ledger[(read.id, stage.value)]
                self.tables.addresses.pop((normalized_address(read.email), stage.value), None)
                lead.schedule_state = ScheduleState.CLAIMED

    def _settle(self, read: Lead, stage: FollowUpStage, locked_at: str | None, **ledger: Any) -> Lead | None:
        stored = self.tables.held(read.id, ScheduleState.SENDING, at=locked_at, stage=stage.value, version=read.version)
        if stored is not None:
            key = (read.id, stage.value)
            self.tables.ledger[key] = replace(self.tables.ledger[key], **ledger)
        return stored

    def record_sent(
        self, lead: Lead, stage: FollowUpStage, sent_at: str, entry: dict[str, Any], next_due_at: str | None
    ) -> bool:
        with self.tables.lock:
            stored = self.tables.held(lead.id, ScheduleState.SENDING, stage=stage.value, version=lead.version)
            if stored is not None:  # the ledger record keeps its `sending` state (see adapters/send_lock.py)
                _advance(stored, lead, stage, sent_at, entry, next_due_at)
            return stored is not None

    def record_failed(self, lead: Lead, stage: FollowUpStage, entry: dict[str, Any]) -> None:
        with self.tables.lock:
            stored = self._settle(lead, stage, None, state=LedgerState.REJECTED)
            if stored is not None:
                stored.schedule_state = stored.schedule_at = stored.claim_stage = None
                stored.eligible_for_reengagement = False
                stored.engagement_history = appended_history(lead.engagement_history, entry)

    def settle_in_doubt(
        self,
        lead: Lead,
        stage: FollowUpStage,
        locked_at: str,
        entry: dict[str, Any],
        next_due_at: str | None,
        state: str,
    ) -> bool:
        with self.tables.lock:
            record = self.tables.ledger.get((lead.id, stage.value))
            if state == LedgerState.POSSIBLY_SENT and record is not None and record.confirmed:
                return False  # SES confirmed it since it was read: the next run settles it as sent
            stored = self._settle(lead, stage, locked_at, state=state)
            if stored is not None:
                _advance(stored, lead, stage, locked_at, entry, next_due_at)
            return stored is not None

    def repair_from_ledger(
        self, lead: Lead, stage: FollowUpStage, record: LedgerRecord, entry: dict[str, Any], next_due_at: str | None
    ) -> bool:
        with self.tables.lock:
            stored = self.tables.held(lead.id, ScheduleState.CLAIMED, stage=stage.value, version=lead.version)
            if stored is None:
                return False
            if record.state in (LedgerState.SENT, LedgerState.POSSIBLY_SENT, LedgerState.SENDING):
                _advance(stored, lead, stage, record.sent_at or record.locked_at, entry, next_due_at)
            else:
                stored.schedule_state = stored.schedule_at = stored.claim_stage = None
                stored.eligible_for_reengagement = False
            return True


@dataclass
class FakeLedger:
    tables: InMemoryTables

    def record(self, lead_id: str, stage: FollowUpStage) -> LedgerRecord | None:
        return self.tables.ledger.get((lead_id, stage.value))

    def lead_for_message(self, message_id: str) -> str | None:
        records = self.tables.ledger.values()
        return next((r.lead_id for r in records if r.message_id and r.message_id == message_id), None)

    def confirm(self, lead_id: str, stage: FollowUpStage, event: str, message_id: str) -> bool | None:
        with self.tables.lock:
            record = self.tables.ledger.get((lead_id, stage.value))
            if record is None:
                return None
            resolved = record.state == LedgerState.POSSIBLY_SENT
            state = LedgerState.SENT if resolved else record.state
            self.tables.ledger[(lead_id, stage.value)] = replace(
                record, confirmed=event, state=state, message_id=record.message_id or message_id
            )
            return resolved

    def reject_after_send(self, lead_id: str, stage: FollowUpStage) -> None:
        record = self.tables.ledger.get((lead_id, stage.value))
        if record is not None:
            self.tables.ledger[(lead_id, stage.value)] = replace(record, state=LedgerState.REJECTED)


@dataclass
class FakeQuota:
    tables: InMemoryTables

    def reserve(self, day: str, cap: int) -> bool:
        with self.tables.lock:
            if self.tables.daily_sends.get(day, 0) >= cap:
                return False
            self.tables.daily_sends[day] = self.tables.daily_sends.get(day, 0) + 1
            return True

    def reserve_up_to(self, day: str, cap: int, count: int) -> Reservation | None:
        with self.tables.lock:
            used = self.tables.daily_sends.get(day, 0)
            granted = count if used + count <= cap else 1 if used < cap else 0
            if not granted:
                return None
            self.tables.daily_sends[day] = used + granted
            return Reservation(day, 0, granted)

    def release(self, reservation: Reservation, unused: int) -> None:
        with self.tables.lock:
            self.tables.daily_sends[reservation.day] -= unused

    def used(self, day: str) -> int:
        return self.tables.daily_sends.get(day, 0)


@dataclass
class FakeSuppression:
    tables: InMemoryTables

    def suppress(self, email: str, reason: str, at: str) -> None:
        self.tables.suppressed[normalized_address(email)] = reason

    def is_suppressed(self, email: str) -> bool:
        return self.tables.is_suppressed(email)

    def suppressed_among(self, emails: Sequence[str]) -> set[str]:
        return {normalized_address(email) for email in emails if self.tables.is_suppressed(email)}


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


def template_writer() -> TemplateWriter:
    """The template writer over the bundled sample knowledge base."""
    return TemplateWriter(load_knowledge_file(""))
