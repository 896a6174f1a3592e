"""The scheduler step of a campaign: find due leads, claim them, enqueue them.

Due leads come from range Queries on the sparse schedule index, one per shard, merged
oldest first (no Scan). Each is claimed with a conditional write, so two runs at once
cannot both claim a lead, then enqueued in batches of 10. The claims are written by a
pool of threads (one client per service, shared): the decisions (limit, one lead per
address) stay in order on the main thread. Claims that nobody finished (a sender that
crashed, a message that went to the dead-letter queue) expire after
`claim_timeout_minutes` and are claimed again by a later run: no lead is lost, none
stays claimed forever. A run that reaches its deadline stops claiming, counts what it
left (LeadsLeftForNextRun), and the schedule's next run (every 15 minutes) continues.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import chain
from typing import Any

from reengage.domain.clock import format_time
from reengage.domain.leads import STAGE_ORDER, FollowUpPolicy, FollowUpStage, ScheduleState
from reengage.ports import (
    FollowUpQueue,
    FollowUpRequest,
    InvalidLeadDataError,
    LedgerState,
    ScheduleEntry,
    Stores,
    TransientError,
)
from reengage.settings import Settings

logger = logging.getLogger(__name__)

# Stop claiming when less than this is left before the Lambda deadline...
DEADLINE_MARGIN_MS = 15_000
# ...and stop counting what is left when less than this is left.
COUNTING_MARGIN_MS = 5_000
# Conditional claims in flight at once (botocore's pool is sized to match: wiring.py).
CLAIM_WORKERS = 16
# Index rows decided, then claimed in parallel, between two looks at the clock.
CLAIM_CHUNK = 160
# SendMessageBatch takes at most 10 messages.
ENQUEUE_BATCH = 10
# A send lock older than this outlived any sender invocation (timeout 120 s).
SEND_LOCK_TIMEOUT = timedelta(minutes=15)
# SQS holds a message back at most this long (DelaySeconds); also the scheduler's default interval.
MAX_SPREAD_SECONDS = 900


def spread_delay(position: int, sends_per_second: int) -> int:
    """Delivery delay of a run's `position`-th message (0-based): at most `sends_per_second` become
    visible in any one second, so the account's rate and reputation see an even flow, not a burst.
    Past 15 minutes' worth, the rest share the last second and the sender's concurrency paces them."""
    return min(MAX_SPREAD_SECONDS, position // sends_per_second)


class InvalidCampaignRequestError(ValueError):
    """A scheduled event or CLI request with a field of the wrong type or range."""


@dataclass(frozen=True)
class CampaignRequest:
    days_since_contact: int
    limit: int | None = None
    dry_run: bool = False

    @classmethod
    def from_event(cls, event: Mapping[str, Any] | None, settings: Settings) -> CampaignRequest:
        """Read the schedule's input; absent fields take the deployment's settings."""
        if event is None:
            event = {}
        if not isinstance(event, Mapping):
            raise InvalidCampaignRequestError(f"event must be a JSON object, got {type(event).__name__}")
        # EventBridge rules wrap the input in `detail`; EventBridge Scheduler passes it as is.
        payload = event.get("detail") if isinstance(event.get("detail"), Mapping) else event
        assert isinstance(payload, Mapping)
        days = payload.get("days_since_contact", settings.days_between_followups)
        limit = payload.get("limit")
        dry_run = payload.get("dry_run", False)
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 3650:
            raise InvalidCampaignRequestError(
                f"days_since_contact must be a whole number 0-3650, got {repr(days)[:100]}"
            )
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidCampaignRequestError(f"limit must be a positive whole number or null, got {repr(limit)[:100]}")
        if not isinstance(dry_run, bool):
            raise InvalidCampaignRequestError(f"dry_run must be true or false, got {repr(dry_run)[:100]}")
        return cls(days_since_contact=days, limit=limit, dry_run=dry_run or settings.dry_run)


@dataclass
class CampaignSummary:
    campaign_id: str
    dry_run: bool
    eligible: int = 0  # due leads found (and abandoned claims found again)
    marked: int = 0  # claimed and enqueued
    reclaimed: int = 0  # of `marked`, abandoned claims taken over
    lost_race: int = 0  # another run claimed the lead first
    enqueue_failed: int = 0  # claims released because SQS refused the message
    left_for_next_run: int = 0  # due but not claimed (limit or deadline)
    duplicate_email: int = 0  # another lead with the same address is in this campaign
    settled_in_doubt: int = 0  # abandoned send locks recorded as possibly sent (never re-sent)
    invalid: int = 0  # rows that cannot be read as leads, set aside (`reengage status` lists them)
    errors: int = 0  # leads a write failed for (logged); the run went on with the others
    stopped_at_deadline: bool = False
    left_count_complete: bool = True  # False: stopped counting what was left at the deadline (a lower bound)
    would_send: list[tuple[str, FollowUpStage]] = field(default_factory=list)  # dry run only

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "dry_run": self.dry_run,
            "eligible": self.eligible,
            "marked": self.marked,
            "reclaimed": self.reclaimed,
            "lost_race": self.lost_race,
            "enqueue_failed": self.enqueue_failed,
            "left_for_next_run": self.left_for_next_run,
            "duplicate_email": self.duplicate_email,
            "settled_in_doubt": self.settled_in_doubt,
            "invalid": self.invalid,
            "errors": self.errors,
            "stopped_at_deadline": self.stopped_at_deadline,
            "left_count_complete": self.left_count_complete,
        }


def new_campaign_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class _Campaign:
    """One scheduler run's state: claims in flight to the queue, and the running summary.

    `plan` runs on the main thread, in index order (the limit, one lead per address);
    `claim` runs on the pool's threads; the summary and the pending batch are shared
    under one lock.
    """

    def __init__(
        self,
        stores: Stores,
        queue: FollowUpQueue,
        request: CampaignRequest,
        summary: CampaignSummary,
        sends_per_second: int,
    ):
        self.schedule = stores.schedule
        self.queue = queue
        self.request = request
        self.summary = summary
        self.sends_per_second = sends_per_second
        self.queued = 0  # claims handed to the queue so far: the next one's place in the spread
        self.pending: list[tuple[FollowUpRequest, ScheduleEntry]] = []
        self.addresses: set[str] = set()
        self.taken = 0  # claims planned (and not lost): the limit counts these
        self.lock = threading.Lock()
        self.claimed_at = ""

    def at_limit(self) -> bool:
        return self.request.limit is not None and self.taken >= self.request.limit

    def plan(self, entry: ScheduleEntry, stage: FollowUpStage) -> bool:
        """Whether to claim this due lead now (else it is counted as left, duplicate or dry run)."""
        self.summary.eligible += 1
        address = entry.email.strip().lower()
        if address and address in self.addresses:
            # One lead per address per campaign: the other stays due for a later run.
            self.summary.duplicate_email += 1
            return False
        if address:
            self.addresses.add(address)
        if self.at_limit():
            self.summary.left_for_next_run += 1
            return False
        self.taken += 1
        if self.request.dry_run:
            self.summary.would_send.append((entry.lead_id, stage))
            return False
        return True

    def claim(self, entry: ScheduleEntry, stage: FollowUpStage, claimed_at: str) -> FollowUpRequest | None:
        """The conditional claim (on a pool thread); the request to enqueue, or None when lost."""
        if not self.schedule.claim(entry, stage, claimed_at, self.summary.campaign_id):
            with self.lock:
                self.summary.lost_race += 1
                self.taken -= 1
            return None
        return FollowUpRequest(entry.lead_id, stage, self.summary.campaign_id)

    def claimed(self, follow_up: FollowUpRequest, entry: ScheduleEntry) -> None:
        """Queue a claimed lead (main thread, in index order: the queue gets them oldest first),
        spread at the SES rate."""
        follow_up = replace(follow_up, delay_seconds=spread_delay(self.queued, self.sends_per_second))
        self.queued += 1
        self.pending.append((follow_up, entry))
        if len(self.pending) == ENQUEUE_BATCH:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        self.enqueue(batch)

    def enqueue(self, batch: list[tuple[FollowUpRequest, ScheduleEntry]]) -> None:
        if not batch:
            return
        failed = set(self.queue.enqueue([follow_up for follow_up, _ in batch]))
        for follow_up, entry in batch:
            if follow_up in failed:
                with self.lock:
                    self.summary.enqueue_failed += 1
                # Back to due so the next run takes it; an abandoned claim just expires again.
                if entry.state is ScheduleState.DUE:
                    self.schedule.release_claim(follow_up.lead_id, follow_up.stage, entry.at)
            else:
                with self.lock:
                    self.summary.marked += 1
                    self.summary.reclaimed += entry.state is ScheduleState.CLAIMED


def settle_abandoned_sends(stores: Stores, policy: FollowUpPolicy, now: datetime) -> list[str]:
    """Send locks held longer than any sender runs: the sender died between the lock and the record.

    The email may or may not have gone out; it is recorded as possibly sent, so it is
    never sent twice, the lead moves on to its next stage, and the log line and
    `reengage status` show it for review.
    """
    settled = []
    for entry in list(stores.schedule.entries(ScheduleState.SENDING, format_time(now - SEND_LOCK_TIMEOUT))):
        try:
            if _settle(stores, policy, entry):
                settled.append(entry.lead_id)
        except TransientError:
            raise
        except Exception as error:  # noqa: BLE001 - one lead's bad item must not stop every run
            logger.error("abandoned send lock not settled", extra={"lead_id": entry.lead_id, "error": repr(error)})
    return settled


def _settle(stores: Stores, policy: FollowUpPolicy, entry: ScheduleEntry) -> bool:
    try:
        lead = stores.leads.get(entry.lead_id)
    except InvalidLeadDataError:
        return False  # a send lock on an unreadable item: left for an operator (`reengage status`)
    if lead is None or lead.claim_stage not in STAGE_ORDER:
        return False
    stage = FollowUpStage(lead.claim_stage)
    ledger = stores.ledger.record(lead.id, stage)
    confirmed = ledger is not None and bool(ledger.confirmed)  # SES reported the send: not in doubt
    record = {
        "stage": stage.value,
        "at": entry.at,
        "outcome": "sent" if confirmed else "possibly_sent",
        "note": "the sender stopped before recording the send; "
        + ("SES confirmed it went out" if confirmed else "not re-sent"),
    }
    if confirmed and ledger is not None and ledger.message_id:
        record["message_id"] = ledger.message_id
    state = LedgerState.SENT if confirmed else LedgerState.POSSIBLY_SENT
    next_due_at = policy.next_due_at(lead, stage, entry.at)
    if not stores.send_lock.settle_in_doubt(lead, stage, entry.at, record, next_due_at, state):
        return False
    logger.warning("send in doubt settled", extra={"lead_id": lead.id, "stage": stage, "as": state})
    return True


def _set_aside_if_unreadable(stores: Stores, entry: ScheduleEntry, summary: CampaignSummary, dry_run: bool) -> bool:
    """A write failed on an item whose unprojected attributes (its version, say) cannot be read as a
    lead: set it aside like an unreadable index row, so it is listed instead of failing every run."""
    try:
        stores.leads.get(entry.lead_id)
    except InvalidLeadDataError as error:
        summary.invalid += 1
        if not dry_run:
            stores.schedule.set_aside(entry.lead_id, str(error))
        logger.warning("unreadable lead set aside", extra={"lead_id": entry.lead_id, "problem": str(error)})
        return True
    except Exception:  # noqa: BLE001 - the original error is the one reported
        return False
    return False


Write = Callable[[], FollowUpRequest | None]


def _take(entry: ScheduleEntry, campaign: _Campaign, policy: FollowUpPolicy) -> Write | None:
    """One index row: the write it needs (set aside when unreadable, unscheduled when finished,
    claimed when due and planned), or None. Decided here, in index order; written by the pool."""
    dry_run = campaign.request.dry_run
    if entry.problem:
        campaign.summary.invalid += 1
        logger.warning("unreadable lead set aside", extra={"lead_id": entry.lead_id, "problem": entry.problem})
        return None if dry_run else lambda: _ok(campaign.schedule.set_aside(entry.lead_id, entry.problem))
    stage = policy.next_stage(entry.follow_up_stage).stage
    if stage is None:
        # Finished its sequence under a smaller MAX_FOLLOWUPS: take it out of the index.
        return None if dry_run else lambda: _ok(campaign.schedule.unschedule(entry))
    if not campaign.plan(entry, stage):
        return None
    return lambda: campaign.claim(entry, stage, campaign.claimed_at)


def _ok(_: bool) -> None:
    """A write whose outcome needs no action: lost to another writer, the row is theirs."""
    return None


def _write(
    stores: Stores, campaign: _Campaign, work: list[tuple[ScheduleEntry, Write]], pool: ThreadPoolExecutor
) -> None:
    """The planned writes, in parallel; the claimed leads are then queued in index order. A lead
    whose write fails is set aside or logged, never the run."""
    summary = campaign.summary

    def attempt(item: tuple[ScheduleEntry, Write]) -> FollowUpRequest | None:
        entry, write = item
        try:
            return write()
        except TransientError:
            raise  # throttled or unavailable: the run fails and the schedule's retry runs it again
        except Exception as error:  # noqa: BLE001 - one lead's bad item must not stop every send
            with campaign.lock:
                if _set_aside_if_unreadable(stores, entry, summary, campaign.request.dry_run):
                    return None
                summary.errors += 1
            logger.error("lead skipped by the scheduler", extra={"lead_id": entry.lead_id, "error": repr(error)})
            return None

    for (entry, _), follow_up in zip(work, pool.map(attempt, work), strict=True):
        if follow_up is not None:
            campaign.claimed(follow_up, entry)


def _count_left(candidates: Iterator[ScheduleEntry], time_left_ms: Callable[[], int]) -> tuple[int, bool]:
    """How many index rows a run that stopped early leaves (all of them, unless time runs out first)."""
    left = 0
    for left, _ in enumerate(candidates, start=1):  # noqa: B007 - the count is the point
        if left % 500 == 0 and time_left_ms() < COUNTING_MARGIN_MS:
            return left, False
    return left, True


def daily_room(stores: Stores, settings: Settings, now: datetime, abandoned_before: str) -> int | None:
    """How many more leads this run may claim so that no more are claimed than MAX_SENDS_PER_DAY lets
    the senders send today: the cap, less today's sends, less the claims and locks still in flight
    (an abandoned claim is not in flight: this run takes it over). None when there is no cap."""
    cap = settings.max_sends_per_day
    if not cap:
        return None
    claims = stores.schedule.entries(ScheduleState.CLAIMED, "9999")
    in_flight = sum(1 for entry in claims if entry.at > abandoned_before)
    in_flight += sum(1 for _ in stores.schedule.entries(ScheduleState.SENDING, "9999"))
    return max(0, cap - stores.quota.used(now.date().isoformat()) - in_flight)


def run_scheduler(
    stores: Stores,
    queue: FollowUpQueue,
    request: CampaignRequest,
    settings: Settings,
    now: datetime,
    time_left_ms: Callable[[], int] = lambda: 900_000,
    campaign_id: str | None = None,
) -> CampaignSummary:
    """Claim and enqueue every due lead (up to `limit`), or only count them in a dry run.

    Abandoned claims (older than the claim timeout) come first: they have waited longest.
    """
    summary = CampaignSummary(campaign_id=campaign_id or new_campaign_id(now), dry_run=request.dry_run)
    policy = settings.policy
    if not request.dry_run:
        summary.settled_in_doubt = len(settle_abandoned_sends(stores, policy, now))
    abandoned_before = format_time(now - timedelta(minutes=settings.claim_timeout_minutes))
    room = daily_room(stores, settings, now, abandoned_before)
    if room is not None and (request.limit is None or room < request.limit):
        # Claims beyond what may be sent today would only be released again by the senders.
        request = replace(request, limit=room)
    campaign = _Campaign(stores, queue, request, summary, settings.ses_max_send_rate)
    campaign.claimed_at = format_time(now)
    candidates = chain(
        stores.schedule.entries(ScheduleState.CLAIMED, abandoned_before),
        stores.schedule.entries(ScheduleState.DUE, policy.due_cutoff(now, request.days_since_contact)),
    )
    with ThreadPoolExecutor(max_workers=CLAIM_WORKERS, thread_name_prefix="claim") as pool:
        while not summary.stopped_at_deadline:
            if time_left_ms() < DEADLINE_MARGIN_MS:
                summary.stopped_at_deadline = True
                break
            work = []
            for entry in candidates:
                write = _take(entry, campaign, policy)
                if write is not None:
                    work.append((entry, write))
                if len(work) == CLAIM_CHUNK:
                    break
            else:
                _write(stores, campaign, work, pool)
                break
            _write(stores, campaign, work, pool)
    campaign.flush()
    if summary.stopped_at_deadline:
        # What this run did not reach is the next run's: say how much (a lower bound if counting ran out of time).
        left, complete = _count_left(candidates, time_left_ms)
        summary.left_for_next_run += left
        summary.left_count_complete = complete
    logger.info("scheduler finished", extra={"summary": summary.as_dict()})
    return summary
