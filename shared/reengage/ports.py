"""The small interfaces the services need, the values they exchange, and the errors adapters raise.

One port per store or concern: adapters/ implements each on AWS, tests/fakes.py in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from reengage.domain.leads import FollowUpStage, Lead, ScheduleState
from reengage.domain.messages import FollowUpMessage, OutgoingEmail

if TYPE_CHECKING:  # only the sync imports these at run time
    from reengage.domain.crm_events import CrmEvent
    from reengage.domain.crm_sync import CrmRecord, UpdateFailure


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
    ADDRESS_TAKEN = "address_taken"  # another lead with this address had (or is sending) this stage
    LEAD_CHANGED = "lead_changed"  # no longer claimed for this stage, or changed since it was read
    SUPPRESSED = "suppressed"  # the address is on the suppression list (put there by another record)


class InvalidLeadDataError(ValueError):
    """A stored item that cannot be read as a lead (wrong attribute type, say)."""


class PoisonMessageError(Exception):
    """A queue message that can never succeed (unknown lead): retried, then dead-lettered."""


class TransientError(Exception):
    """Try again later: throttling, an outage, a lost connection before anything happened."""


class SendNotAttemptedError(TransientError):
    """The email was never handed to the mail service (it could not be built, no credentials...)."""


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
    problem: str = ""  # the row cannot be read as a lead's (an attribute of the wrong type, say)


@dataclass(frozen=True)
class UnreadableLead:
    """A stored item that is not a lead reengage can read (`reengage migrate` lists them)."""

    lead_id: str
    problem: str


@dataclass(frozen=True)
class FollowUpRequest:
    """The queue message: which lead is claimed for which stage, by which campaign."""

    lead_id: str
    stage: FollowUpStage
    campaign_id: str
    # Seconds SQS holds the message before the sender may see it: a run's sends are spread at the SES rate.
    delay_seconds: int = 0


class Leads(Protocol):
    """The leads table, whole leads at a time."""

    def get(self, lead_id: str) -> Lead | None:
        """Raises InvalidLeadDataError when the stored item cannot be read as a lead."""
        ...

    def put(self, lead: Lead, previous: Lead | None = None) -> bool:
        """Write a whole lead, only if nobody changed it since `previous` was read (None: only if new)."""
        ...

    def get_many(self, lead_ids: Sequence[str]) -> dict[str, Lead | UnreadableLead]:
        """The stored leads among `lead_ids` (consistent reads, in bulk); absent ids are left out."""
        ...

    def put_all(self, writes: Sequence[tuple[Lead, Lead | None]]) -> list[bool]:
        """`put` for each (lead, previous) pair, in bulk: each lead whole or not at all; per lead,
        whether it was written (False: it changed since `previous` was read)."""
        ...

    def find_by_email(self, address: str) -> str | None:
        """The id of a lead with this address (any case), if one exists."""
        ...

    def colleagues(self, company: str) -> list[str]:
        """The ids of the leads whose company key (domain.companies) is `company`."""
        ...

    def scan(self) -> Iterator[Lead | UnreadableLead]:
        """Every item, page by page (upkeep and statistics only; selection never scans)."""
        ...

    def set_attributes(self, lead_id: str, values: Mapping[str, Any], previous_version: int) -> bool:
        """Set (or, with None, remove) plain attributes, only if the lead is unchanged."""
        ...


class Schedule(Protocol):
    """The sparse schedule index, and the conditional moves of a lead along it."""

    def entries(self, state: ScheduleState, until: str) -> Iterator[ScheduleEntry]:
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

    def set_aside(self, lead_id: str, problem: str) -> bool:
        """Move an unreadable lead to the `invalid` state (unless a send lock holds it): never claimed
        again until an import or `reengage migrate` writes it whole."""
        ...


class SendLock(Protocol):
    """The send lock: the lead and its ledger record for a stage, moved together (one transaction each)."""

    def lock(self, lead: Lead, stage: FollowUpStage, locked_at: str, campaign_id: str) -> LockResult:
        """Create the ledger record for (lead, stage) and the address's record for the stage, and take
        the lead's send lock, atomically, only if the lead is still claimed for the stage and unchanged
        since `lead` was read (its version)."""
        ...

    def unlock(self, lead: Lead, stage: FollowUpStage) -> None:
        """Give the lock back (and drop the ledger record) after a send that certainly did not happen."""
        ...

    def record_sent(
        self, lead: Lead, stage: FollowUpStage, sent_at: str, entry: dict[str, Any], next_due_at: str | None
    ) -> bool:
        """Record a successful send (lead and ledger), guarded by the lock and the version `lead` was
        read at; False when either changed (read the lead again and retry, or see the ledger)."""
        ...

    def record_failed(self, lead: Lead, stage: FollowUpStage, entry: dict[str, Any]) -> None:
        """Record a send the mail service refused for good; the lead leaves the schedule."""
        ...

    def settle_in_doubt(
        self,
        lead: Lead,
        stage: FollowUpStage,
        locked_at: str,
        entry: dict[str, Any],
        next_due_at: str | None,
        state: str,
    ) -> bool:
        """Record an abandoned lock as `state` (possibly sent, or sent when SES confirmed it)."""
        ...

    def repair_from_ledger(
        self, lead: Lead, stage: FollowUpStage, record: LedgerRecord, entry: dict[str, Any], next_due_at: str | None
    ) -> bool:
        """Bring back in line a lead claimed for a stage the ledger already holds."""
        ...


class SendLedger(Protocol):
    """The ledger's records read on their own, and what SES events add to them."""

    def record(self, lead_id: str, stage: FollowUpStage) -> LedgerRecord | None: ...

    def lead_for_message(self, message_id: str) -> str | None:
        """The lead a sent message (SES message id) went to."""
        ...

    def confirm(self, lead_id: str, stage: FollowUpStage, event: str, message_id: str) -> bool | None:
        """Note an SES Send/Delivery (and SES's message id) on the record, in one write: True when it
        turned a possible send into a sent one, False when only noted, None when there is no record."""
        ...

    def reject_after_send(self, lead_id: str, stage: FollowUpStage) -> None: ...


@dataclass(frozen=True)
class Reservation:
    """Sends counted against a day's cap ahead of sending (on one counter shard)."""

    day: str
    shard: int
    count: int
    token: str = ""  # makes giving unused sends back idempotent


class Quota(Protocol):
    """The daily send cap, counted across all senders."""

    def reserve(self, day: str, cap: int) -> bool:
        """Count one send against `day`; False (and nothing counted) once `cap` are counted."""
        ...

    def reserve_up_to(self, day: str, cap: int, count: int) -> Reservation | None:
        """Count `count` sends at once when there is room for all, else one; None once `cap` are counted."""
        ...

    def release(self, reservation: Reservation, unused: int) -> None:
        """Give back counted sends that did not happen."""
        ...

    def used(self, day: str) -> int: ...


class Suppression(Protocol):
    """Addresses that are never mailed again, whichever lead carries them."""

    def suppress(self, email: str, reason: str, at: str) -> None: ...

    def is_suppressed(self, email: str) -> bool: ...

    def suppressed_among(self, emails: Sequence[str]) -> set[str]:
        """Which of these addresses (normalized) are suppressed, in one call for up to 100."""
        ...


Counts = dict[str, int]


class Counters(Protocol):
    """The statistics counters (totals and sends per day)."""

    def apply(self, totals: Counts, days: Counts, checkpoint: tuple[str, str] | None = None) -> None:
        """Move the counters by a delta; optionally remember a stream position with it."""
        ...

    def read(self, now: datetime, days_back: int) -> tuple[Counts, Counts]: ...

    def replace(self, totals: Counts, days: Counts) -> None: ...

    def checkpoint(self, shard_id: str) -> str | None: ...


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


@dataclass(frozen=True)
class Stores:
    """The state a service works on: the leads table and the send-ledger table, by concern."""

    leads: Leads
    schedule: Schedule
    send_lock: SendLock
    ledger: SendLedger
    quota: Quota
    suppression: Suppression


# --- the CRM sync (services/crm_sync.py) ---------------------------------------------------------


class CrmTable(Protocol):
    """One CRM table (adapters/airtable.py)."""

    def changed_since(self, cursor: str | None) -> Iterator[list[CrmRecord]]: ...

    def update(self, updates: Sequence[tuple[str, dict[str, Any]]]) -> list[UpdateFailure]: ...


class SyncState(Protocol):
    """The cursor and the record <-> lead links of one table (adapters/sync_state.py)."""

    def cursor(self) -> str | None: ...

    def save_cursor(self, cursor: str, at: str) -> None: ...

    def links(self) -> dict[str, str]: ...

    def records_of(self, lead_ids: Iterable[str]) -> dict[str, str]: ...

    def link(self, pairs: Mapping[str, str]) -> None: ...


class EventBus(Protocol):
    def publish(self, events: Sequence[CrmEvent]) -> int: ...
