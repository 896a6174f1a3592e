"""The scheduler step of a campaign: find due leads, claim them, enqueue them.

Due leads come from one range Query on the sparse schedule index (no Scan). Each is
claimed with a conditional write, so two runs at once cannot both claim a lead, then
enqueued in batches of 10. Claims that nobody finished (a sender that crashed, a
message that went to the dead-letter queue) expire after `claim_timeout_minutes`
and are claimed again by a later run: no lead is lost, none stays claimed forever.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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

# Stop claiming when less than this is left before the Lambda deadline.
DEADLINE_MARGIN_MS = 15_000
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
        }


def new_campaign_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class _Campaign:
    """One scheduler run's state: claims in flight to the queue, and the running summary."""

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
        self.claimed = 0
        self.pending: list[tuple[FollowUpRequest, ScheduleEntry]] = []
        self.addresses: set[str] = set()

    def at_limit(self) -> bool:
        taken = self.summary.marked + len(self.pending) + len(self.summary.would_send)
        return self.request.limit is not None and taken >= self.request.limit

    def consider(self, entry: ScheduleEntry, stage: FollowUpStage, claimed_at: str) -> None:
        self.summary.eligible += 1
        address = entry.email.strip().lower()
        if address and address in self.addresses:
            # One lead per address per campaign: the other stays due for a later run.
            self.summary.duplicate_email += 1
            return
        if address:
            self.addresses.add(address)
        if self.at_limit():
            self.summary.left_for_next_run += 1
        elif self.request.dry_run:
            self.summary.would_send.append((entry.lead_id, stage))
        elif not self.schedule.claim(entry, stage, claimed_at, self.summary.campaign_id):
            self.summary.lost_race += 1
        else:
            delay = spread_delay(self.claimed, self.sends_per_second)
            self.claimed += 1
            follow_up = FollowUpRequest(entry.lead_id, stage, self.summary.campaign_id, delay)
            self.pending.append((follow_up, entry))
            if len(self.pending) == ENQUEUE_BATCH:
                self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        failed = set(self.queue.enqueue([follow_up for follow_up, _ in self.pending]))
        for follow_up, entry in self.pending:
            if follow_up in failed:
                self.summary.enqueue_failed += 1
                # Back to due so the next run takes it; an abandoned claim just expires again.
                if entry.state is ScheduleState.DUE:
                    self.schedule.release_claim(follow_up.lead_id, follow_up.stage, entry.at)
            else:
                self.summary.marked += 1
                self.summary.reclaimed += entry.state is ScheduleState.CLAIMED
        self.pending.clear()


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


def _take(entry: ScheduleEntry, campaign: _Campaign, policy: FollowUpPolicy, claimed_at: str) -> None:
    """One index row: set aside when unreadable, unscheduled when finished, else considered for a claim."""
    dry_run = campaign.request.dry_run
    if entry.problem:
        campaign.summary.invalid += 1
        if not dry_run:
            campaign.schedule.set_aside(entry.lead_id, entry.problem)
        logger.warning("unreadable lead set aside", extra={"lead_id": entry.lead_id, "problem": entry.problem})
        return
    stage = policy.next_stage(entry.follow_up_stage).stage
    if stage is None:
        # Finished its sequence under a smaller MAX_FOLLOWUPS: take it out of the index.
        if not dry_run:
            campaign.schedule.unschedule(entry)
        return
    campaign.consider(entry, stage, claimed_at)


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
    campaign = _Campaign(stores, queue, request, summary, settings.ses_max_send_rate)
    claimed_at = format_time(now)
    abandoned_before = format_time(now - timedelta(minutes=settings.claim_timeout_minutes))
    candidates = chain(
        stores.schedule.entries(ScheduleState.CLAIMED, abandoned_before),
        stores.schedule.entries(ScheduleState.DUE, policy.due_cutoff(now, request.days_since_contact)),
    )
    for entry in candidates:
        if time_left_ms() < DEADLINE_MARGIN_MS:
            summary.stopped_at_deadline = True
            break
        try:
            _take(entry, campaign, policy, claimed_at)
        except TransientError:
            raise  # throttled or unavailable: the run fails and the schedule's retry runs it again
        except Exception as error:  # noqa: BLE001 - one lead's bad item must not stop every send
            if _set_aside_if_unreadable(stores, entry, summary, request.dry_run):
                continue
            summary.errors += 1
            logger.error("lead skipped by the scheduler", extra={"lead_id": entry.lead_id, "error": repr(error)})
    campaign.flush()
    logger.info("scheduler finished", extra={"summary": summary.as_dict()})
    return summary
