"""Fault injection for the real pipeline on the emulator.

The scheduler and sender services run with the real adapters (DynamoDB, SQS, SES over
HTTP); faults are injected at the adapter boundary (a proxy calls a hook before or after
the real call) or inside botocore (an event hook raises the error AWS would return).
A `Crash` is a Lambda invocation dying (timeout, out of memory): it is a BaseException,
so nothing in the code under test can catch it, and nothing after it runs.
"""

from __future__ import annotations

import email.utils
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from reengage import wiring
from reengage.domain.leads import Lead, ScheduleState
from reengage.ports import LockResult, Stores
from reengage.services.scheduler import CampaignRequest, CampaignSummary, run_scheduler
from reengage.services.sender import FollowUpSender, SendOutcome
from reengage.settings import Settings
from reengage_cli.emulator import iam
from tests.conftest import load_handler
from tests.fakes import template_writer

Hook = Callable[..., None]
SENDER_FUNCTION = load_handler("sender")


class Crash(BaseException):
    """The invocation died here."""


@dataclass
class Context:
    """A Lambda context whose deadline can be made to arrive early."""

    remaining_ms: int = 120_000
    function_name: str = "fault-suite"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:fault-suite"
    aws_request_id: str = "fault"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Faults:
    """Named injection points, each with hooks that run on the next N passes."""

    hooks: dict[str, list[Hook]] = field(default_factory=dict)
    probability: dict[str, tuple[float, Hook]] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    fired: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def once(self, point: str, hook: Hook, times: int = 1) -> None:
        self.hooks.setdefault(point, []).extend([hook] * times)

    def after(self, point: str, passes: int, hook: Hook) -> None:
        """Let `passes` go by untouched, then run `hook` once."""
        self.once(point, lambda *_: None, times=passes)
        self.once(point, hook)

    def sometimes(self, point: str, chance: float, hook: Hook) -> None:
        self.probability[point] = (chance, hook)

    def at(self, point: str, *details: Any) -> None:
        with self.lock:
            queued = self.hooks.get(point)
            hook = queued.pop(0) if queued else None
            if hook is None and point in self.probability:
                chance, candidate = self.probability[point]
                hook = candidate if self.rng.random() < chance else None
            if hook is not None:
                self.fired[point] += 1
        if hook is not None:
            with iam.acting_as(None):  # the fault is another party (a reply, SES), not the function
                hook(*details)


def crash(*_: Any) -> None:
    raise Crash()


class _Faulty:
    """A real adapter, with injection points around the calls that matter."""

    def __init__(self, real: Any, faults: Faults) -> None:
        self.real = real
        self.faults = faults

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class FaultyLeads(_Faulty):
    def get(self, lead_id: str) -> Lead | None:
        self.faults.at("sender.read")
        lead: Lead | None = self.real.get(lead_id)
        return lead


class FaultySchedule(_Faulty):
    def claim(self, *args: Any) -> bool:
        self.faults.at("scheduler.before_claim")
        claimed = bool(self.real.claim(*args))
        if claimed:
            self.faults.at("scheduler.after_claim")
        return claimed


class FaultySendLock(_Faulty):
    def lock(self, lead: Lead, *args: Any) -> LockResult:
        self.faults.at("sender.before_lock", lead.id)
        result: LockResult = self.real.lock(lead, *args)
        if result is LockResult.LOCKED:
            self.faults.at("sender.after_lock", lead.id)
        return result

    def record_sent(self, *args: Any) -> bool:
        recorded = bool(self.real.record_sent(*args))
        self.faults.at("sender.after_record")
        return recorded


def faulty_stores(real: Stores, faults: Faults) -> Stores:
    return replace(
        real,
        leads=FaultyLeads(real.leads, faults),
        schedule=FaultySchedule(real.schedule, faults),
        send_lock=FaultySendLock(real.send_lock, faults),
    )


class FaultyMailer:
    def __init__(self, real: Any, faults: Faults) -> None:
        self.real = real
        self.faults = faults

    def send(self, message: Any) -> str:
        message_id: str = self.real.send(message)
        self.faults.at("sender.after_send")
        return message_id


class Pipeline:
    """Scheduler + queue + sender on the emulator, with a clock that can be moved forward."""

    def __init__(self, endpoint: str, settings: Settings, faults: Faults | None = None) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.faults = faults or Faults()
        self.now = datetime.now(UTC)
        self.real_stores = wiring.stores(settings)
        self.stores = faulty_stores(self.real_stores, self.faults)
        self.queue = wiring.follow_up_queue(settings)
        self.sqs = wiring.client("sqs")
        real_mailer = wiring.ses_mailer(settings)
        real_mailer.client.meta.events.register("before-call.sesv2.SendEmail", self._ses_hook)  # type: ignore[attr-defined]
        self.mailer = FaultyMailer(real_mailer, self.faults)
        self.sender = FollowUpSender(self.stores, self.mailer, template_writer(), settings, clock=lambda: self.now)
        self.context = Context()
        self.crashes = 0
        self.outcomes: list[SendOutcome] = []

    def _ses_hook(self, **_: Any) -> None:  # botocore passes the request as keywords
        self.faults.at("ses.before_send")

    # -- the two functions ----------------------------------------------------
    def schedule(self, time_left_ms: Callable[[], int] = lambda: 300_000) -> CampaignSummary | None:
        try:
            with iam.acting_as(iam.registered("SchedulerFunction")):  # as the deployed function's role
                return run_scheduler(
                    self.stores,
                    self.queue,
                    CampaignRequest(self.settings.days_between_followups),
                    self.settings,
                    self.now,
                    time_left_ms,
                )
        except Crash:
            self.crashes += 1
            return None

    def _visible_again(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.sqs.change_message_visibility(
                QueueUrl=self.settings.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )

    def deliver(self, duplicate_chance: float = 0.0, max_batches: int = 10_000) -> None:
        """Lambda's SQS event source: batches of 10, failed records back on the queue, crashes retried."""
        rng = random.Random(5)
        for _ in range(max_batches):
            messages = self.sqs.receive_message(
                QueueUrl=self.settings.queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=60,
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return
            event = _as_event(messages)
            try:
                with iam.acting_as(iam.registered("SenderFunction")):
                    response, outcomes = SENDER_FUNCTION.handle_batch(
                        event, self.context, self.sender, lambda handle, delay: self._retry_now(handle)
                    )
                    if rng.random() < duplicate_chance:
                        # At-least-once delivery: the same batch again.
                        _, again = SENDER_FUNCTION.handle_batch(event, self.context, self.sender)
                        outcomes = outcomes + again
            except Crash:
                self.crashes += 1
                self._visible_again(messages)  # the invocation failed: every record comes back
                continue
            self.outcomes.extend(outcomes)
            failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
            done = [message for message in messages if message["MessageId"] not in failed]
            if done:
                self.sqs.delete_message_batch(
                    QueueUrl=self.settings.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
            self._visible_again([message for message in messages if message["MessageId"] in failed])

    def _retry_now(self, receipt_handle: str) -> None:
        # The backoff, compressed: the test does not wait minutes for SQS.
        self.sqs.change_message_visibility(
            QueueUrl=self.settings.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0
        )

    def run_until_quiet(self, rounds: int = 6, duplicate_chance: float = 0.0) -> None:
        """Daily runs, each followed by the sender draining the queue; the clock moves past every timeout."""
        for _ in range(rounds):
            self.schedule()
            self.deliver(duplicate_chance)
            self.now += timedelta(minutes=self.settings.claim_timeout_minutes + 1)

    # -- what happened ----------------------------------------------------------
    def emails_by_recipient(self) -> Counter[str]:
        """Recipients of every email SES accepted. The emulator runs in this process, so its SES
        backend is read directly: the HTTP dump (`reengage outbox`) grows with every table item."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ses.models import ses_backends

        messages = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
        return Counter(
            email.utils.parseaddr(str(email.message_from_string(message.raw_data)["To"]))[1].lower()
            for message in messages
            if hasattr(message, "raw_data")
        )

    def leads(self) -> list[Lead]:
        return [item for item in self.real_stores.leads.scan() if isinstance(item, Lead)]


def _as_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message["Attributes"],
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:reengage-local-ReengagementQueue",
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
    }


def ses_throttling(*_: Any) -> None:
    raise ClientError({"Error": {"Code": "Throttling", "Message": "Maximum sending rate exceeded."}}, "SendEmail")


@dataclass(frozen=True)
class Verdict:
    due: int
    sent: int
    duplicates: int
    lost: int
    ineligible_emailed: int
    left_claimed: int
    possibly_sent: int


def check_invariants(pipeline: Pipeline, due_emails: set[str], ineligible_emails: set[str]) -> Verdict:
    """Each due lead exactly one email for its stage, none for the others, no lead left claimed."""
    sent = pipeline.emails_by_recipient()
    leads = pipeline.leads()
    possibly_sent = {
        lead.email.lower()
        for lead in leads
        if any(entry.get("outcome") == "possibly_sent" for entry in lead.engagement_history)
    }
    return Verdict(
        due=len(due_emails),
        sent=sum(count for address, count in sent.items() if address in due_emails),
        duplicates=sum(count - 1 for count in sent.values() if count > 1),
        lost=sum(1 for address in due_emails if sent[address] == 0 and address not in possibly_sent),
        ineligible_emailed=sum(sent[address] for address in ineligible_emails),
        left_claimed=sum(
            lead.schedule_state in (ScheduleState.CLAIMED, ScheduleState.SENDING) or lead.eligible_for_reengagement
            for lead in leads
        ),
        possibly_sent=len(possibly_sent),
    )
