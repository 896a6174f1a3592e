"""The small interfaces the services need, and the errors adapters raise through them.

Adapters (DynamoDB, SQS, SES) implement these; tests pass in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from reengage.leads import FollowUpStage, Lead, ScheduleState
from reengage.messages import FollowUpMessage


class LedgerState:
    SENDING = "sending"  # the send lock is held: the email may be on its way
    SENT = "sent"  # SES accepted it
    POSSIBLY_SENT = "possibly_sent"  # the sender died holding the lock: never re-sent, shown for review
    REJECTED = "rejected"  # SES refused it for good


@dataclass(frozen=True)
class LedgerRecord:
    lead_id: str
    stage: str
    state: str
    locked_at: str = ""
    sent_at: str = ""
    message_id: str = ""
    confirmed: str = ""  # the SES event (Send/Delivery) that proved the email went out


class LockResult(StrEnum):
    LOCKED = "locked"
    ALREADY_RECORDED = "already_recorded"  # the ledger holds this lead and stage already
    LEAD_CHANGED = "lead_changed"  # no longer claimed for this stage, or changed since it was read


class InvalidLeadDataError(ValueError):
    """A stored item that cannot be read as a lead (wrong attribute type, say)."""


class PoisonMessageError(Exception):
    """A queue message that can never succeed (unknown lead): retried, then dead-lettered."""


class TransientError(Exception):
    """Try again later: throttling, an outage, a lost connection before anything happened."""


class SendRejectedError(Exception):
    """The mail service refused this message for good (bad address, content rejected)."""


class SendInDoubtError(Exception):
    """The send request went out but no answer came back: it may have been delivered."""


@dataclass(frozen=True)
class ScheduleEntry:
    """One row of the schedule index: enough to claim the lead without reading it."""

    lead_id: str
    state: ScheduleState
    at: str
    follow_up_stage: str | None
    email: str = ""


@dataclass
class QueryStats:
    """Items DynamoDB examined and API calls made, for the selection benchmark."""

    items_examined: int = 0
    calls: int = 0


@dataclass(frozen=True)
class FollowUpRequest:
    """The queue message: which lead is claimed for which stage, by which campaign."""

    lead_id: str
    stage: FollowUpStage
    campaign_id: str


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    to_name: str
    subject: str
    text: str
    html: str
    tags: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class LeadStore(Protocol):
    query_stats: QueryStats

    def get(self, lead_id: str) -> Lead | None: ...

    def schedule(self, state: ScheduleState, until: str) -> Iterator[ScheduleEntry]:
        """Index rows in `state` whose sort key is at or before `until`, oldest first."""
        ...

    def claim(self, entry: ScheduleEntry, stage: FollowUpStage, claimed_at: str, campaign_id: str) -> bool:
        """Move a due (or abandoned claimed) lead to claimed, only if the row is unchanged."""
        ...

    def unschedule(self, entry: ScheduleEntry) -> bool:
        """Take a lead out of the schedule index, only if the row is unchanged."""
        ...

    def release_claim(self, lead_id: str, stage: FollowUpStage, due_at: str | None) -> bool:
        """Put a claimed lead back to due (or out of the index when `due_at` is None)."""
        ...

    def lock_for_send(self, lead: Lead, stage: FollowUpStage, locked_at: str, campaign_id: str) -> LockResult:
        """Create the ledger record for (lead, stage) and take the lead's send lock, atomically,
        only if the lead is still claimed for the stage and unchanged since `lead` was read."""
        ...

    def unlock_send(self, lead_id: str, stage: FollowUpStage) -> None:
        """Give the lock back (and drop the ledger record) after a send that certainly did not happen."""
        ...

    def ledger_record(self, lead_id: str, stage: FollowUpStage) -> LedgerRecord | None: ...

    def reserve_daily_slot(self, day: str, cap: int) -> bool:
        """Count one send against `day`; False once `cap` are counted."""
        ...

    def sends_on(self, day: str) -> int:
        """Sends counted against `day` so far."""
        ...

    def record_sent(
        self, lead: Lead, stage: FollowUpStage, sent_at: str, entry: dict[str, Any], next_due: bool
    ) -> bool:
        """Record a successful send (lead and ledger), guarded by the send lock; False when the lock was lost."""
        ...

    def record_failed(self, lead: Lead, stage: FollowUpStage, entry: dict[str, Any]) -> None:
        """Record a send the mail service refused for good; the lead leaves the schedule."""
        ...

    def settle_in_doubt(
        self, lead: Lead, stage: FollowUpStage, locked_at: str, entry: dict[str, Any], next_due: bool, state: str
    ) -> bool:
        """Record an abandoned send lock as `state` (possibly sent, or sent when SES confirmed it)."""
        ...

    def repair_from_ledger(
        self, lead: Lead, stage: FollowUpStage, record: LedgerRecord, entry: dict[str, Any], next_due: bool
    ) -> bool:
        """Bring back in line a lead claimed for a stage the ledger already holds."""
        ...

    def put(self, lead: Lead, previous: Lead | None = None) -> bool:
        """Write a whole lead, only if nobody changed it since `previous` was read."""
        ...

    def scan(self) -> Iterator[Lead]: ...

    def confirm_send(self, lead_id: str, stage: FollowUpStage, event: str, message_id: str) -> bool:
        """Note an SES Send/Delivery on the ledger; True when it turned a possible send into a sent one."""
        ...

    def reject_after_send(self, lead_id: str, stage: FollowUpStage) -> None: ...

    def suppress(self, email: str, reason: str, at: str) -> None:
        """Put an address on the suppression list: no lead with it is ever mailed again."""
        ...

    def is_suppressed(self, email: str) -> bool: ...

    def lead_for_message(self, message_id: str) -> str | None:
        """The lead a sent message (SES message id) went to."""
        ...

    def lead_for_email(self, address: str) -> str | None:
        """A lead with this address (any case), if one exists."""
        ...


class FollowUpQueue(Protocol):
    def enqueue(self, requests: Sequence[FollowUpRequest]) -> list[FollowUpRequest]:
        """Send in batches of 10; returns the requests that could not be enqueued."""
        ...


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> str:
        """Send one email; returns the provider's message id."""
        ...


class MessageWriter(Protocol):
    def start_batch(self, time_left_ms: Callable[[], int] | None) -> None:
        """A new batch begins; `time_left_ms` tells how long the invocation may still run."""
        ...

    def write(self, lead: Lead, stage: FollowUpStage, now: datetime) -> FollowUpMessage: ...
