"""The sender step: one queued follow-up request becomes at most one email.

For each request: re-read the lead; skip it with a reason when it is no longer due;
write the message; take the send lock (a conditional write that succeeds once per lead
and stage); send; record the result under that lock. A request delivered twice, or two
senders racing, cannot produce a second email: only one of them gets the lock, and a
lock that is never released (a crash after the send) is treated as possibly sent.
The SQS batch glue (partial failures, backoff) is the SenderFunction's handler.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from time import monotonic
from typing import Any

from reengage.domain.clock import format_time, parse_time, utc_now
from reengage.domain.correlation import own_message_id, reply_mac
from reengage.domain.leads import (
    STAGE_ORDER,
    FollowUpPolicy,
    FollowUpStage,
    Lead,
    ScheduleState,
    SkipReason,
    appended_history,
    normalized_address,
)
from reengage.domain.messages import FollowUpMessage, OutgoingEmail, follow_up_email
from reengage.domain.unsubscribe import UnsubscribeLinks
from reengage.ports import (
    FollowUpRequest,
    InvalidLeadDataError,
    LedgerState,
    LockResult,
    Mailer,
    MessageWriter,
    PoisonMessageError,
    Reservation,
    SendInDoubtError,
    SendRejectedError,
    Stores,
    TransientError,
    UnreadableLead,
)
from reengage.settings import Settings

logger = logging.getLogger(__name__)

SENT = "sent"
SKIPPED = "skipped"
# How long the day's send count read before writing a message is reused (see `_used_today`).
USED_FRESH_SECONDS = 5.0
DEFERRED = "deferred"  # daily cap, closed send window or company pause: due again for a later window
FAILED = "failed"
IN_DOUBT = "in_doubt"
_RECORD_ATTEMPTS = 3


@dataclass(frozen=True)
class SendOutcome:
    lead_id: str
    stage: str
    kind: str  # sent | skipped | failed | in_doubt
    reason: str = ""
    message_id: str = ""
    generator: str = ""
    subject: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fallback_reason: str = ""
    local_hour: int = 0  # of a sent follow-up, on the lead's own clock

    @classmethod
    def of(cls, lead_id: str, stage: str, kind: str, message: FollowUpMessage, **details: Any) -> SendOutcome:
        return cls(
            lead_id,
            stage,
            kind,
            generator=message.generator,
            subject=message.subject,
            model=message.model,
            prompt_tokens=message.prompt_tokens,
            completion_tokens=message.completion_tokens,
            fallback_reason=message.fallback_reason,
            **details,
        )


@dataclass
class _Batch:
    """What one SQS batch read ahead (see FollowUpSender.start_batch) and counted against the cap."""

    leads: dict[str, Lead | UnreadableLead] = field(default_factory=dict)
    suppressed: dict[str, bool] = field(default_factory=dict)  # normalized address -> suppressed
    left: int = 0  # requests of the batch not handled yet
    reservation: Reservation | None = None
    reserved_left: int = 0


def _recorded(lead: Lead, stage: FollowUpStage, message_id: str) -> bool:
    """The lead already holds this send (recorded by an attempt whose answer was lost)."""
    history = lead.engagement_history[-3:]
    return lead.follow_up_stage == stage and any(entry.get("message_id") == message_id for entry in history)


def _stage_index(stage: str | None) -> int:
    return STAGE_ORDER.index(FollowUpStage(stage)) if stage in STAGE_ORDER else -1


class FollowUpSender:
    def __init__(
        self,
        stores: Stores,
        mailer: Mailer,
        writer: MessageWriter,
        settings: Settings,
        clock: Callable[[], datetime] = utc_now,
        unsubscribe: UnsubscribeLinks | None = None,
        reply_key: Callable[[], bytes] | None = None,
    ) -> None:
        self.stores = stores
        self.mailer = mailer
        self.writer = writer
        self.settings = settings
        self.policy: FollowUpPolicy = settings.policy
        self.clock = clock
        self.unsubscribe = unsubscribe
        # Signs our Message-IDs (correlation.reply_mac): the link-signing key unless told otherwise.
        self.reply_key = reply_key or (unsubscribe.key if unsubscribe is not None else None)

        self._used: tuple[str, int, float] | None = None  # (day, sends counted, when read)
        self._batches = threading.local()  # a _Batch per thread: a process may handle batches side by side

    @property
    def _batch(self) -> _Batch:
        batch: _Batch | None = getattr(self._batches, "batch", None)
        if batch is None:
            batch = self._batches.batch = _Batch()
        return batch

    def start_batch(self, lead_ids: Sequence[str]) -> None:
        """Read the batch's leads, and which of their addresses are suppressed, in one BatchGetItem
        each: two calls per SQS batch instead of two per message. Each lead read serves only the
        first look at its request; every write is still conditioned on the version read, so a lead
        changed meanwhile fails its lock and is read again. A failed read-ahead only costs the
        per-message reads it was meant to save."""
        self.finish_batch()
        batch = self._batch
        batch.left = len(lead_ids)
        try:
            batch.leads = self.stores.leads.get_many(lead_ids[:100])
            emails = {normalized_address(lead.email) for lead in batch.leads.values() if isinstance(lead, Lead)}
            addresses = sorted(emails)[:100]
            suppressed = self.stores.suppression.suppressed_among(addresses)
            batch.suppressed = {address: address in suppressed for address in addresses}
        except Exception as error:  # noqa: BLE001 - an optimisation: the requests read one by one instead
            logger.warning("batch read-ahead failed", extra={"error": repr(error)})
            batch.leads, batch.suppressed = {}, {}

    def finish_batch(self) -> None:
        """Give back the sends the batch counted against the cap and did not make."""
        batch = self._batch
        batch.leads, batch.suppressed, batch.left = {}, {}, 0
        if batch.reservation is not None:
            try:
                self.finish_reservation()
            except Exception as error:  # noqa: BLE001 - the cap stays counted high: fewer sends today, never more
                logger.warning("unused daily-cap reservation not given back", extra={"error": repr(error)})

    def _read_lead(self, lead_id: str) -> Lead | None:
        ahead = self._batch.leads.pop(lead_id, None)
        if isinstance(ahead, UnreadableLead):
            raise InvalidLeadDataError(f"lead {lead_id!r}: {ahead.problem}")
        return ahead if ahead is not None else self.stores.leads.get(lead_id)

    def _is_suppressed(self, email: str) -> bool:
        read_ahead = self._batch.suppressed.get(normalized_address(email))
        return read_ahead if read_ahead is not None else self.stores.suppression.is_suppressed(email)

    def _used_today(self, day: str) -> int:
        """The day's sends, read at most once per USED_FRESH_SECONDS (about once per SQS batch). The check
        before writing only spares writing a message that cannot go out: the reservation taken after
        the lock is what holds the cap, so a count a few seconds old is safe."""
        now = monotonic()
        if self._used is not None and self._used[0] == day and now - self._used[2] < USED_FRESH_SECONDS:
            return self._used[1]
        used = self.stores.quota.used(day)
        self._used = (day, used, now)
        return used

    def _counted(self, day: str) -> None:
        if self._used is not None and self._used[0] == day:
            self._used = (day, self._used[1] + 1, self._used[2])

    def _skip(self, request: FollowUpRequest, reason: SkipReason, detail: str = "") -> SendOutcome:
        logger.info(
            "follow-up skipped",
            extra={
                "lead_id": request.lead_id,
                "campaign_id": request.campaign_id,
                "stage": request.stage,
                "reason": reason,
            },
        )
        return SendOutcome(request.lead_id, request.stage.value, SKIPPED, f"{reason}{': ' + detail if detail else ''}")

    def _release(self, lead: Lead, stage: FollowUpStage, not_before: datetime | None = None) -> None:
        """Give the claim back: due again (not before `not_before`) when the lead can still get a
        follow-up, out of the index if not."""
        key = self.policy.schedule_key(lead, not_before)
        self.stores.schedule.release_claim(lead.id, stage, key.at if key else None)

    def _held_back(self, lead: Lead, request: FollowUpRequest) -> SendOutcome | None:
        """A lead paused by a colleague's response, or whose local send window has closed (a backlog,
        a retry, a slow model), goes back to due for its next window instead of going out late."""
        now = self.clock()
        if self.policy.paused(lead, now):
            reason = SkipReason.COMPANY_PAUSED
        elif not self.policy.in_window(lead, now):
            reason = SkipReason.OUTSIDE_WINDOW
        else:
            return None
        self._release(lead, request.stage, not_before=now)
        logger.info("follow-up deferred", extra={"lead_id": lead.id, "stage": request.stage, "reason": reason.value})
        return SendOutcome(lead.id, request.stage.value, DEFERRED, reason)

    def _stop(self, lead: Lead, stage: FollowUpStage, reason: SkipReason) -> None:
        """This record's sequence ends, and the lead says why in its history: another lead with the
        address unsubscribed, bounced or complained (suppressed, so no import or run puts it back), or
        the same person under another lead had this stage (one sequence per person)."""
        at = format_time(self.clock())
        entry = {"stage": stage.value, "at": at, "outcome": "stopped", "reason": reason.value}
        stopped = {
            "suppressed": lead.suppressed or reason is SkipReason.SUPPRESSED,
            "eligible_for_reengagement": False,
            "engagement_history": appended_history(lead.engagement_history, entry),
            "schedule_state": None,
            "schedule_at": None,
            "claim_stage": None,
            "updated_at": at,
        }
        # An update, not a put: the sender's role may not replace items (and a put costs the whole item).
        if not self.stores.leads.set_attributes(lead.id, stopped, lead.version):
            # Changed since read; whoever changed it owns the schedule now. The claim still goes.
            self.stores.schedule.release_claim(lead.id, stage, None)

    def _claimed_lead(self, request: FollowUpRequest) -> Lead | SendOutcome:
        """The lead, still claimed for this stage and still eligible, or the outcome that ends the request."""
        try:
            lead = self._read_lead(request.lead_id)
        except InvalidLeadDataError as error:
            self.stores.schedule.set_aside(request.lead_id, str(error))
            return self._skip(request, SkipReason.INVALID_DATA, str(error))
        if lead is None:
            # Retried, then dead-lettered: a message for a lead nobody has is for an operator to see.
            raise PoisonMessageError(f"lead {request.lead_id!r} does not exist")
        if _stage_index(lead.follow_up_stage) >= _stage_index(request.stage):
            return self._skip(request, SkipReason.ALREADY_SENT, lead.follow_up_stage or "")
        if lead.schedule_state == ScheduleState.SENDING and lead.claim_stage == request.stage:
            return self._skip(request, SkipReason.SEND_IN_DOUBT)
        if lead.schedule_state != ScheduleState.CLAIMED or lead.claim_stage != request.stage:
            return self._skip(request, SkipReason.NOT_CLAIMED, lead.schedule_state or "not scheduled")
        verdict = self.policy.standing(lead)
        if verdict.due and self._is_suppressed(lead.email):
            self._stop(lead, request.stage, SkipReason.SUPPRESSED)
            return self._skip(request, SkipReason.SUPPRESSED, "address on the suppression list")
        if verdict.stage != request.stage:
            # Its state changed since it was claimed (replied, converted, opted out...).
            self._release(lead, request.stage)
            return self._skip(request, verdict.reason or SkipReason.NOT_CLAIMED, verdict.detail)
        return lead

    def send(self, request: FollowUpRequest) -> SendOutcome:
        """Handle one request. Raises TransientError when it should be retried later."""
        batch = self._batch
        batch_left, batch.left = max(1, batch.left), max(0, batch.left - 1)
        lead = self._claimed_lead(request)
        if isinstance(lead, SendOutcome):
            return lead
        if held := self._held_back(lead, request):
            return held
        now = self.clock()
        day, cap = now.date().isoformat(), self.settings.max_sends_per_day
        if cap and self._used_today(day) >= cap:
            # Due again from tomorrow (UTC, the cap's day), in the lead's next window then.
            tomorrow = datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=UTC)
            self._release(lead, request.stage, not_before=tomorrow)
            return SendOutcome(lead.id, request.stage.value, DEFERRED, SkipReason.DAILY_CAP)
        message = self.writer.write(lead, request.stage, now)
        if not_sent := self._not_sent(lead, request, message):
            return not_sent
        # Everything that can fail without sending (the link-signing secret, the email itself) happens
        # before the lock: a failure inside the lock window would leave a send in doubt.
        email = self._email(lead, request, message, now)
        if held := self._held_back(lead, request):  # the model may have taken the window's last seconds
            return held

        locked_at = format_time(now)
        lock = self.stores.send_lock.lock(lead, request.stage, locked_at, request.campaign_id)
        if lock is LockResult.ALREADY_RECORDED:
            return self._already_recorded(lead, request)
        if lock is LockResult.SUPPRESSED:
            # Another record of this person was opted out after this batch read the suppression list.
            self._stop(lead, request.stage, SkipReason.SUPPRESSED)
            return self._skip(request, SkipReason.SUPPRESSED, "address on the suppression list")
        if lock is LockResult.ADDRESS_TAKEN:
            # The same person, under another lead, had (or is being sent) this stage: one sequence per person.
            self._stop(lead, request.stage, SkipReason.DUPLICATE_ADDRESS)
            return self._skip(request, SkipReason.DUPLICATE_ADDRESS)
        if lock is LockResult.LEAD_CHANGED:
            # Changed between our read and the lock (another sender, a reply, an import):
            # start over with what is stored now.
            latest = self._claimed_lead(request)
            if isinstance(latest, SendOutcome):
                return latest
            raise TransientError(f"lead {lead.id} changed while being locked; retrying")
        locked = replace(lead, version=lead.version + 1, schedule_state=ScheduleState.SENDING, schedule_at=locked_at)
        if not self._reserve(locked, request, day, cap, batch_left):
            self._unlock(locked, request, "over the daily cap")
            self._release(lead, request.stage)
            return SendOutcome(lead.id, request.stage.value, DEFERRED, SkipReason.DAILY_CAP)
        return self._deliver(locked, request, message, email)

    def _not_sent(self, lead: Lead, request: FollowUpRequest, message: FollowUpMessage) -> SendOutcome | None:
        """A dry run, or a message with problems, which is never sent. Only a knowledge base that even the
        generic template cannot pass with gets the latter: set aside (counted as invalid_lead_data) for an
        operator, not retried every run."""
        if self.settings.dry_run:
            self._release(lead, request.stage)
            return SendOutcome.of(lead.id, request.stage.value, SKIPPED, message, reason=SkipReason.DRY_RUN)
        if not message.problems:
            return None
        logger.error("message failed the quality gate", extra={"lead_id": lead.id, "problems": message.problems})
        self.stores.schedule.set_aside(lead.id, f"failed the quality gate: {message.problems[0]}")
        reason = f"{SkipReason.QUALITY_GATE}: {message.problems[0]}"
        return SendOutcome.of(lead.id, request.stage.value, SKIPPED, message, reason=reason)

    def _reserve(self, locked: Lead, request: FollowUpRequest, day: str, cap: int, batch_left: int) -> bool:
        """Count this send against the day's cap (no cap: always); the lock is given back if counting
        fails. The first send of a batch counts the whole rest of the batch in one write; the next ones
        use that reservation, and finish_batch gives back what was not sent."""
        if not cap:
            return True
        batch = self._batch
        if batch.reservation is not None and batch.reservation.day == day and batch.reserved_left > 0:
            batch.reserved_left -= 1
            self._counted(day)
            return True
        try:
            self.finish_reservation()
            reservation = self.stores.quota.reserve_up_to(day, cap, batch_left)
        except Exception:
            self._unlock(locked, request, "the daily cap could not be counted")
            raise
        if reservation is None:
            return False
        batch.reservation, batch.reserved_left = reservation, reservation.count - 1
        self._counted(day)
        return True

    def finish_reservation(self) -> None:
        """Give back what a reservation counted and no send used (another day's, or the batch's end)."""
        batch = self._batch
        reservation, unused = batch.reservation, batch.reserved_left
        batch.reservation, batch.reserved_left = None, 0
        if reservation is not None and unused:
            self.stores.quota.release(reservation, unused)

    def _unlock(self, locked: Lead, request: FollowUpRequest, why: str) -> None:
        """Give the lock back after a send that certainly did not happen: the request is retried."""
        logger.warning("send lock given back", extra={"lead_id": locked.id, "stage": request.stage, "why": why})
        self.stores.send_lock.unlock(locked, request.stage)

    def _email(self, lead: Lead, request: FollowUpRequest, message: FollowUpMessage, now: datetime) -> OutgoingEmail:
        domain = self.settings.sender_email.split("@")[1]
        # The MAC covers the send lock's time (`locked_at`, kept on the ledger record of this send).
        locked_at = format_time(now)
        key = self.reply_key() if self.reply_key is not None else b""
        mac = reply_mac(key, lead.id, request.stage.value, locked_at) if key else secrets.token_hex(16)
        message_id = own_message_id(lead.id, request.stage.value, mac, domain)
        unsubscribe_url = self.unsubscribe.url(lead.id, now) if self.unsubscribe is not None else ""
        return follow_up_email(lead, request.stage, request.campaign_id, message, message_id, unsubscribe_url)

    def _already_recorded(self, lead: Lead, request: FollowUpRequest) -> SendOutcome:
        """The ledger already holds this stage for this lead: never send; repair the lead if it forgot."""
        record = self.stores.ledger.record(lead.id, request.stage)
        if record is None:
            return self._skip(request, SkipReason.SEND_IN_DOUBT)
        entry = {
            "stage": request.stage.value,
            "at": record.sent_at or record.locked_at,
            "outcome": "restored_from_ledger",
            "ledger_state": record.state,
        }
        contacted = record.sent_at or record.locked_at or format_time(self.clock())
        self.stores.send_lock.repair_from_ledger(
            lead, request.stage, record, entry, self.policy.next_due_at(lead, request.stage, contacted)
        )
        logger.warning("stage already in the send ledger", extra={"lead_id": lead.id, "stage": request.stage})
        # A `sending` record is a lock whose send the lead recorded: the stage was taken.
        state = "locked" if record.state == LedgerState.SENDING else record.state
        return self._skip(request, SkipReason.ALREADY_SENT, f"ledger says {state}")

    def _deliver(
        self, locked: Lead, request: FollowUpRequest, message: FollowUpMessage, email: OutgoingEmail
    ) -> SendOutcome:
        entry: dict[str, Any] = {
            "stage": request.stage.value,
            "at": locked.schedule_at,
            "generator": message.generator,
            "campaign_id": request.campaign_id,
            "subject": message.subject,
        }
        if message.ai_calls:
            entry |= {
                "model": message.model,
                "prompt_tokens": message.prompt_tokens,
                "completion_tokens": message.completion_tokens,
            }
        if message.left_out:
            entry["left_out"] = list(message.left_out)
        if message.fallback_reason:
            entry["fallback_reason"] = message.fallback_reason
        try:
            message_id = self.mailer.send(email)
        except TransientError as error:  # nothing was sent (throttled, unreachable, not even attempted)
            self._unlock(locked, request, str(error))
            raise
        except SendRejectedError as error:
            self.stores.send_lock.record_failed(
                locked, request.stage, {**entry, "outcome": "rejected", "error": str(error)}
            )
            logger.warning(
                "follow-up rejected", extra={"lead_id": locked.id, "stage": request.stage, "error": str(error)}
            )
            return SendOutcome.of(locked.id, request.stage.value, FAILED, message, reason=str(error))
        except SendInDoubtError as error:
            # Keep the lock: a second email is worse than a missing one.
            logger.error(
                "follow-up possibly sent", extra={"lead_id": locked.id, "stage": request.stage, "error": str(error)}
            )
            return SendOutcome.of(locked.id, request.stage.value, IN_DOUBT, message, reason=str(error))

        sent_at = format_time(self.clock())
        self._record_sent(
            locked, request, sent_at, {**entry, "at": sent_at, "outcome": "sent", "message_id": message_id}
        )
        logger.info(
            "follow-up sent",
            extra={
                "lead_id": locked.id,
                "campaign_id": request.campaign_id,
                "stage": request.stage,
                "message_id": message_id,
                "to": locked.email,  # masked by the log formatter
                "generator": message.generator,
            },
        )
        local_hour = parse_time(sent_at).astimezone(self.policy.zone(locked).zoneinfo).hour
        outcome = SendOutcome.of(locked.id, request.stage.value, SENT, message, message_id=message_id)
        return replace(outcome, local_hour=local_hour)

    def _record_sent(self, locked: Lead, request: FollowUpRequest, sent_at: str, entry: dict[str, Any]) -> None:
        """Record the send against the lead as it is stored now: a reply or an import that landed while
        the email was on its way (each conditioned on its own read) is kept, never overwritten."""
        lead: Lead | None = locked
        for _ in range(_RECORD_ATTEMPTS):
            assert lead is not None
            try:
                if self.stores.send_lock.record_sent(
                    lead, request.stage, sent_at, entry, self.policy.next_due_at(lead, request.stage, sent_at)
                ):
                    return
            except TransientError:
                pass
            lead = self.stores.leads.get(locked.id)
            if lead is not None and _recorded(lead, request.stage, str(entry["message_id"])):
                return  # an earlier attempt landed (its reply was lost)
            if lead is None or lead.schedule_state != ScheduleState.SENDING or lead.claim_stage != request.stage:
                break
        # The ledger still holds the lock: note that SES took it, so the next scheduler run records it as sent.
        self.stores.ledger.confirm(locked.id, request.stage, "Send", str(entry["message_id"]))
        logger.error("follow-up sent but not recorded yet", extra={"lead_id": locked.id, "stage": request.stage})
