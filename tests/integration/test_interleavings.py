"""Lead state under any interleaving (issue 10), property-based on the emulator over HTTP.

Hypothesis interleaves real operations (CRM re-imports, `reengage mark`, unsubscribes,
replies, bounces, writes landing while an email is on its way) with scheduler runs and
sender batches (some delivered twice), then lets the system go quiet and checks:
at most one email per address and stage; every lead due a follow-up got it or was
explicitly stopped; no lead left claimed or sending; no history entry lost.

`make test` runs a bounded number of examples; REENGAGE_INTERLEAVINGS=N runs N (benchmarks).
"""

from __future__ import annotations

import email
import email.policy
import os
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from reengage import wiring
from reengage.domain.clock import format_time
from reengage.domain.correlation import decode_tag, parse_own_reference
from reengage.domain.leads import IN_FLIGHT, Lead, ResponseStatus, normalized_address
from reengage.domain.ses_events import SesEvent
from reengage.services.imports import import_rows
from reengage.services.responses import apply_ses_event, record_response
from reengage.services.scheduler import CampaignRequest, run_scheduler
from reengage.services.sender import FollowUpSender
from reengage.settings import Settings
from reengage_cli.emulator import provision
from tests.conftest import TIMELESS, load_handler
from tests.fakes import template_writer

EXAMPLES = int(os.environ.get("REENGAGE_INTERLEAVINGS", "8"))
STEPS = int(os.environ.get("REENGAGE_INTERLEAVING_STEPS", "25"))
SENDER_FUNCTION = load_handler("sender")
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
# Six leads: two people have two records each (their address in another case).
ADDRESSES = [
    "ana@example.com",
    "Bo@Example.com",
    "bo@example.com",
    "cy@example.com",
    "dee@example.com",
    "DEE@example.com",
]
LEADS = [f"lead-{n}" for n in range(len(ADDRESSES))]
lead_ids = st.sampled_from(LEADS)
INTERFERENCES: list[int] = []  # racing writes that landed mid-send, per example


def export_row(number: int, **changes: Any) -> dict[str, Any]:
    return {
        "id": LEADS[number],
        "name": f"Person {number}",
        "email": ADDRESSES[number],
        "engagement_status": "Sent",
        "email_confidence_level": "Real",
        "response_status": "No Response",
        "last_contacted": format_time(START - timedelta(days=8 + number)),
        **changes,
    }


def sent_emails() -> list[tuple[str, str]]:
    """(normalized address, stage) of every email SES accepted, read from the raw messages."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    sent = []
    for message in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages:
        parsed = email.message_from_string(message.raw_data, policy=email.policy.default)
        reference = parse_own_reference(str(parsed["Message-ID"]).strip("<>").split("@")[0])
        assert reference is not None
        sent.append((normalized_address(parsed["To"].addresses[0].addr_spec), reference.stage.value))
    return sent


class Interleavings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
        os.environ.update(provision.provision(TIMELESS).environment)
        self.settings = Settings.from_env(os.environ)
        self.stores = wiring.stores(self.settings)
        self.queue = wiring.follow_up_queue(self.settings)
        self.sqs = wiring.client("sqs")
        self.now = START
        self.responses: Counter[tuple[str, str]] = Counter()  # (lead, status) recorded by a rule
        self.sender = FollowUpSender(
            self.stores, wiring.ses_mailer(self.settings), template_writer(), self.settings, clock=lambda: self.now
        )
        self.interfere: Any = None
        self.interferences = 0
        self.sender.mailer.client.meta.events.register(  # type: ignore[attr-defined]
            "provide-client-params.sesv2.SendEmail", self._during_send
        )
        report = import_rows(self.stores, enumerate(self._export(), 1), self.now, self.settings.policy)
        assert report.rejected == []

    def _export(self) -> list[dict[str, Any]]:
        return [export_row(number) for number in range(len(LEADS))]

    def _during_send(self, params: dict[str, Any], **_: Any) -> None:
        """Runs as SES is handed an email: the racing write lands on the lead being emailed."""
        if self.interfere is not None:
            action, self.interfere = self.interfere, None
            tags = {tag["Name"]: decode_tag(tag["Value"]) for tag in params["EmailTags"]}
            action(tags["lead_id"])
            self.interferences += 1

    # -- operations ------------------------------------------------------------------
    @rule()
    def schedule(self) -> None:
        run_scheduler(
            self.stores, self.queue, CampaignRequest(self.settings.days_between_followups), self.settings, self.now
        )

    @rule(twice=st.booleans())
    def deliver(self, twice: bool) -> None:
        self._deliver(twice)

    def _deliver(self, twice: bool) -> bool:
        """One sender batch; False when the queue had nothing to give."""
        messages = self.sqs.receive_message(
            QueueUrl=self.settings.queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=30,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return False
        event = {"Records": [_record(message) for message in messages]}
        response, _ = SENDER_FUNCTION.handle_batch(event, None, self.sender)
        if twice:  # at-least-once delivery: the same batch again
            SENDER_FUNCTION.handle_batch(event, None, self.sender)
        failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        done = [m for m in messages if m["MessageId"] not in failed]
        retried = [m for m in messages if m["MessageId"] in failed]
        if retried:  # the visibility timeout passes at once: the simulated clock is days, not seconds
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.settings.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(retried)
                ],
            )
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.settings.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return True

    @rule(converted=st.sets(lead_ids, max_size=2))
    def reimport(self, converted: set[str]) -> None:
        rows = [
            export_row(n, response_status="Converted") if LEADS[n] in converted else export_row(n)
            for n in range(len(LEADS))
        ]
        import_rows(self.stores, enumerate(rows, 1), self.now, self.settings.policy)

    @rule(lead_id=lead_ids, status=st.sampled_from(list(ResponseStatus)))
    def respond(self, lead_id: str, status: ResponseStatus) -> None:
        self._respond(lead_id, status)

    def _queued(self) -> bool:
        """Messages are waiting: a racing write then has an email to land on."""
        name = "ApproximateNumberOfMessages"
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.settings.queue_url, AttributeNames=[name])
        return int(attributes["Attributes"].get(name, 0)) > 0

    @precondition(lambda self: self._queued())
    @rule(status=st.sampled_from([ResponseStatus.REJECTED, ResponseStatus.UNSUBSCRIBED]))
    def respond_while_sending(self, status: ResponseStatus) -> None:
        """The lead answers while its email is being handed to SES."""
        self.interfere = lambda lead_id: self._respond(lead_id, status)
        self._deliver(twice=False)

    @precondition(lambda self: self._queued())
    @rule()
    def reimport_while_sending(self) -> None:
        """The CRM export lands while an email is being handed to SES."""
        self.interfere = lambda lead_id: import_rows(
            self.stores,
            [(1, export_row(LEADS.index(lead_id), name="Renamed"))],
            self.now,
            self.settings.policy,
        )
        self._deliver(twice=False)

    @rule(lead_id=lead_ids)
    def hard_bounce(self, lead_id: str) -> None:
        before = self.stores.leads.get(lead_id)
        event = SesEvent("Bounce", lead_id, "Followup_1", "ses-id", format_time(self.now), hard_bounce=True)
        apply_ses_event(event, self.stores, self.now, self.settings.policy)
        if isinstance(before, Lead) and before.response_status != ResponseStatus.BOUNCED.value:
            self.responses[(lead_id, ResponseStatus.BOUNCED.value)] += 1  # a repeat is the same response

    @rule(days=st.integers(min_value=1, max_value=9))
    def time_passes(self, days: int) -> None:
        self.now += timedelta(days=days)

    def _respond(self, lead_id: str, status: ResponseStatus) -> None:
        if record_response(self.stores, lead_id, status, "test", self.now, self.settings.policy):
            self.responses[(lead_id, status.value)] += 1

    # -- what must hold at every step, and once quiet ----------------------------------
    @invariant()
    def at_most_one_email_per_address_and_stage(self) -> None:
        repeated = {key: count for key, count in Counter(sent_emails()).items() if count > 1}
        assert not repeated, f"sent more than once: {repeated}"

    def teardown(self) -> None:
        self.interfere = None
        INTERFERENCES.append(self.interferences)
        for _ in range(6):  # quiet: every timeout passes, every run and batch completes
            self.now += timedelta(
                days=self.settings.days_between_followups, minutes=self.settings.claim_timeout_minutes
            )
            self.schedule()
            for _ in range(20):
                if not self._deliver(twice=False):
                    break
        leads = {lead.id: lead for lead in self.stores.leads.scan() if isinstance(lead, Lead)}
        sent = sent_emails()
        self.at_most_one_email_per_address_and_stage()
        for lead in leads.values():
            assert lead.schedule_state not in IN_FLIGHT, f"{lead.id} left {lead.schedule_state}"
            self._check_history(lead, sent)
            self._check_emailed_or_stopped(lead, sent)

    def _check_history(self, lead: Lead, sent: list[tuple[str, str]]) -> None:
        recorded = Counter(
            (lead.id, entry["status"]) for entry in lead.engagement_history if entry.get("outcome") == "response"
        )
        for (lead_id, status), count in self.responses.items():
            if lead_id == lead.id:
                assert recorded[(lead_id, status)] >= count, f"{lead_id}: a {status} response was lost from history"
        stages = {
            entry.get("stage") for entry in lead.engagement_history if entry.get("outcome") in ("sent", "possibly_sent")
        }
        if lead.follow_up_stage:
            assert lead.follow_up_stage in stages, f"{lead.id}: {lead.follow_up_stage} is not in its history"

    def _check_emailed_or_stopped(self, lead: Lead, sent: list[tuple[str, str]]) -> None:
        verdict = self.settings.policy.standing(lead)
        if not verdict.due:
            return  # finished its sequence, answered, suppressed...
        # Still standing: only because the same person, under another record, had that stage.
        assert verdict.stage is not None
        assert (normalized_address(lead.email), verdict.stage.value) in sent, (
            f"{lead.id} was due {verdict.stage} and neither emailed nor stopped ({lead.schedule_state})"
        )


def _record(message: dict[str, Any]) -> dict[str, Any]:
    return {
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


def test_any_interleaving_keeps_the_invariants(moto_endpoint: str, restore_environ: None) -> None:
    os.environ["AWS_ENDPOINT_URL"] = moto_endpoint
    run_state_machine_as_test(
        Interleavings,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            derandomize=EXAMPLES <= 8,  # `make test` runs the same examples every time; benchmarks explore
        ),
    )
    # The suite is only worth something if writes really raced sends.
    assert sum(INTERFERENCES) > 0, "no write landed while an email was being sent"
    print(f"interleavings: {len(INTERFERENCES)} examples, {sum(INTERFERENCES)} writes raced a send")
