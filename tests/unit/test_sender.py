"""The sender step with in-memory ports: at most one email per lead and stage, skips with reasons."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from reengage.domain.leads import FollowUpStage, ScheduleState
from reengage.ports import (
    FollowUpRequest,
    InvalidLeadDataError,
    PoisonMessageError,
    SendInDoubtError,
    SendRejectedError,
    TransientError,
)
from reengage.services.scheduler import CampaignRequest, run_scheduler
from reengage.services.sender import (
    DEFERRED,
    FAILED,
    IN_DOUBT,
    SENT,
    SKIPPED,
    FollowUpSender,
)
from tests.conftest import NOW, FakeLambdaContext, load_event, load_handler
from tests.fakes import InMemoryTables, RecordingMailer, RecordingQueue, template_writer
from tests.unit.test_scheduler import SETTINGS, lead

# The SQS glue is SenderFunction's own: tested through the handler module Lambda loads.
SENDER_FUNCTION = load_handler("sender")


def claimed_store(*leads):
    store = InMemoryTables(leads)
    queue = RecordingQueue()
    run_scheduler(store.stores, queue, CampaignRequest(7), SETTINGS, NOW, campaign_id="c-1")
    return store, queue.messages


def sender(store, mailer=None, settings=SETTINGS):
    return FollowUpSender(store.stores, mailer or RecordingMailer(), template_writer(), settings, clock=lambda: NOW)


def test_sends_and_records_stage_status_and_history():
    store, requests = claimed_store(lead(1, follow_up_stage=None))
    mailer = RecordingMailer()
    outcome = sender(store, mailer).send(requests[0])
    assert outcome.kind == SENT and outcome.message_id == "msg-1"
    assert [email.to for email in mailer.sent] == ["person1@example.com"]
    stored = store.leads["lead-001"]
    assert stored.follow_up_stage == "Followup_1"
    assert stored.last_contacted == "2026-11-24T09:00:00.000000Z"
    assert not stored.eligible_for_reengagement
    assert stored.engagement_history[-1] | {} == {
        "stage": "Followup_1",
        "at": "2026-11-24T09:00:00.000000Z",
        "outcome": "sent",
        "message_id": "msg-1",
        "generator": "template",
        "campaign_id": "c-1",
        "subject": mailer.sent[0].subject,
    }
    # Waiting for Followup_2, due DAYS_BETWEEN_FOLLOWUPS after this contact
    assert (stored.schedule_state, stored.schedule_at) == (ScheduleState.DUE, "2026-12-01T09:00:00.000000Z")


def test_after_the_last_stage_the_lead_leaves_the_schedule():
    store, requests = claimed_store(lead(1, follow_up_stage="Followup_1"))
    assert sender(store).send(requests[0]).kind == SENT
    stored = store.leads["lead-001"]
    assert stored.follow_up_stage == "Followup_2" and stored.schedule_state is None


def test_duplicate_delivery_sends_one_email():
    store, requests = claimed_store(lead(1))
    mailer = RecordingMailer()
    first = sender(store, mailer).send(requests[0])
    second = sender(store, mailer).send(requests[0])
    assert (first.kind, second.kind) == (SENT, SKIPPED)
    assert second.reason.startswith("stage_already_sent")
    assert len(mailer.sent) == 1


def test_two_senders_racing_send_one_email():
    store, requests = claimed_store(lead(1))
    mailer = RecordingMailer()
    barrier = threading.Barrier(8)
    outcomes = []

    def race() -> None:
        barrier.wait()
        outcomes.append(sender(store, mailer).send(requests[0]).kind)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(SENT) == 1 and len(mailer.sent) == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"response_status": "Converted"}, "responded: Converted"),
        ({"response_status": "Interested"}, "responded: Interested"),
        ({"suppressed": True}, "suppressed"),
        ({"email": "broken"}, "invalid_email"),
        ({"engagement_status": "Failed"}, "engagement_status_not_sent"),
    ],
)
def test_a_lead_that_changed_after_its_claim_is_skipped_not_sent(change, reason):
    store, requests = claimed_store(lead(1))
    store.leads["lead-001"] = replace(store.leads["lead-001"], **change)
    mailer = RecordingMailer()
    outcome = sender(store, mailer).send(requests[0])
    assert outcome.kind == SKIPPED and outcome.reason.startswith(reason)
    assert mailer.sent == []
    stored = store.leads["lead-001"]
    assert stored.schedule_state is None and not stored.eligible_for_reengagement


def test_unknown_lead_is_poison_and_unclaimed_lead_is_skipped():
    store = InMemoryTables([lead(1)])
    mailer = RecordingMailer()
    with pytest.raises(PoisonMessageError, match="'nobody' does not exist"):
        sender(store, mailer).send(FollowUpRequest("nobody", FollowUpStage.FOLLOWUP_1, "c"))
    unclaimed = sender(store, mailer).send(FollowUpRequest("lead-001", FollowUpStage.FOLLOWUP_1, "c"))
    assert unclaimed.reason.startswith("not_claimed")
    assert mailer.sent == []


def test_throttling_puts_the_request_back_and_a_retry_sends_once():
    store, requests = claimed_store(lead(1))
    mailer = RecordingMailer()
    mailer.fail_with = TransientError("SES Throttling")
    with pytest.raises(TransientError):
        sender(store, mailer).send(requests[0])
    assert store.leads["lead-001"].schedule_state == ScheduleState.CLAIMED  # lock given back
    mailer.fail_with = None
    assert sender(store, mailer).send(requests[0]).kind == SENT
    assert len(mailer.sent) == 1


def test_rejected_send_is_recorded_as_failed_and_not_retried():
    store, requests = claimed_store(lead(1))
    mailer = RecordingMailer()
    mailer.fail_with = SendRejectedError("SES MessageRejected: bad address")
    outcome = sender(store, mailer).send(requests[0])
    assert outcome.kind == FAILED
    stored = store.leads["lead-001"]
    assert stored.schedule_state is None
    assert stored.engagement_history[-1]["outcome"] == "rejected"


def test_send_in_doubt_keeps_the_lock_so_it_is_never_sent_again():
    store, requests = claimed_store(lead(1))
    mailer = RecordingMailer()
    mailer.fail_with = SendInDoubtError("read timeout")
    assert sender(store, mailer).send(requests[0]).kind == IN_DOUBT
    mailer.fail_with = None
    retry = sender(store, mailer).send(requests[0])
    assert retry.kind == SKIPPED and retry.reason == "send_in_doubt"
    assert mailer.sent == []


def test_dry_run_setting_renders_but_sends_nothing_and_releases_the_claim():
    store, requests = claimed_store(lead(1))
    mailer = RecordingMailer()
    outcome = sender(store, mailer, replace(SETTINGS, dry_run=True)).send(requests[0])
    assert outcome.reason == "dry_run" and outcome.subject
    assert mailer.sent == []
    assert store.leads["lead-001"].schedule_state == ScheduleState.DUE


def test_batch_reports_only_failed_records(monkeypatch):
    # Given a two-record SQS batch where SES throttles the second lead
    store, _ = claimed_store(lead(1), lead(11, follow_up_stage="Followup_1"))
    event = load_event("sqs-follow-ups")
    mailer = RecordingMailer()
    original = mailer.send

    def throttle_second(email):
        if email.to == "person11@example.com":
            raise TransientError("SES Throttling")
        return original(email)

    monkeypatch.setattr(mailer, "send", throttle_second)
    response, outcomes = SENDER_FUNCTION.handle_batch(event, FakeLambdaContext(), sender(store, mailer))
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert [outcome.kind for outcome in outcomes] == [SENT]


def test_a_malformed_body_is_rejected_not_retried_and_the_others_are_sent():
    store, _ = claimed_store(lead(1))
    event = load_event("sqs-follow-ups")
    event["Records"][1]["body"] = '{"lead_id": "", "stage": "Followup_7"}'
    response, outcomes = SENDER_FUNCTION.handle_batch(event, FakeLambdaContext(), sender(store))
    assert response["batchItemFailures"] == []  # no retry can fix it: a counted rejection instead
    assert [outcome.kind for outcome in outcomes] == [SENT]


def test_the_ledger_stops_a_second_email_after_another_system_resets_the_stage():
    # Given a lead that got Followup_1
    store, requests = claimed_store(lead(1))
    mailer = RecordingMailer()
    assert sender(store, mailer).send(requests[0]).kind == SENT
    # When a CRM import puts its stage back to empty and a later run claims it again
    store.leads["lead-001"] = replace(
        store.leads["lead-001"], follow_up_stage=None, schedule_state="due", schedule_at="2026-11-01T00:00:00.000000Z"
    )
    queue = RecordingQueue()
    run_scheduler(store.stores, queue, CampaignRequest(7), SETTINGS, NOW)
    outcome = sender(store, mailer).send(queue.messages[0])
    # Then no second email; the lead is put back on its real stage
    assert outcome.kind == SKIPPED and outcome.reason == "stage_already_sent: ledger says locked"
    assert len(mailer.sent) == 1
    repaired = store.leads["lead-001"]
    assert repaired.follow_up_stage == "Followup_1" and repaired.schedule_state == ScheduleState.DUE


def test_daily_cap_defers_the_rest_to_the_next_run():
    store, requests = claimed_store(*(lead(n) for n in range(5)))
    mailer = RecordingMailer()
    capped = sender(store, mailer, replace(SETTINGS, max_sends_per_day=3))
    kinds = [capped.send(request).kind for request in requests]
    assert kinds == [SENT, SENT, SENT, DEFERRED, DEFERRED]
    assert len(mailer.sent) == 3
    waiting = [item for item in store.leads.values() if item.follow_up_stage is None]
    assert len(waiting) == 2 and all(item.schedule_state == ScheduleState.DUE for item in waiting)
    assert not any(item.eligible_for_reengagement for item in waiting)


def test_invalid_stored_data_is_skipped_with_a_reason():
    store, requests = claimed_store(lead(1))

    def broken(lead_id):
        raise InvalidLeadDataError("lead 'lead-001': attribute last_contacted has type N")

    store.stores.leads.get = broken
    outcome = sender(store).send(requests[0])
    assert outcome.kind == SKIPPED and outcome.reason.startswith("invalid_lead_data")


def test_throttled_records_come_back_after_an_exponential_backoff():
    store, _ = claimed_store(lead(1), lead(11, follow_up_stage="Followup_1"))
    event = load_event("sqs-follow-ups")
    event["Records"][1]["attributes"]["ApproximateReceiveCount"] = "3"
    mailer = RecordingMailer()
    mailer.fail_with = TransientError("SES Throttling")
    delays: list[tuple[str, int]] = []
    response, _ = SENDER_FUNCTION.handle_batch(
        event, FakeLambdaContext(), sender(store, mailer), lambda handle, delay: delays.append((handle, delay))
    )
    assert len(response["batchItemFailures"]) == 2
    first, third = delays
    assert 24 <= first[1] <= 36 and 96 <= third[1] <= 144  # 30 s then 120 s, +/-20%
    assert SENDER_FUNCTION.retry_delay_seconds(30, 0.5) == 900  # capped at 15 minutes
    assert SENDER_FUNCTION.retry_delay_seconds(1, 0.0) == 24
    assert SENDER_FUNCTION.retry_delay_seconds(999_999_999, 0.5) == 900  # no 2 ** 999,999,998 on the way


def test_a_message_that_fails_the_gate_is_never_sent():
    # Given a knowledge base whose proof point carries a phone number: not even the generic template passes
    from reengage.domain.knowledge import load_knowledge_file
    from reengage.domain.messages import TemplateWriter

    knowledge = replace(load_knowledge_file(""), proof_points=("Call us on +1 415 555 0132 for details.",))
    store, requests = claimed_store(lead(1, follow_up_stage=None))
    mailer = RecordingMailer()
    writer = TemplateWriter(knowledge)
    # When the sender handles the request
    outcome = FollowUpSender(store.stores, mailer, writer, SETTINGS, clock=lambda: NOW).send(requests[0])
    # Then nothing is sent, the reason says why, and the lead is set aside (not retried every run)
    assert mailer.sent == [] and outcome.kind == SKIPPED
    assert outcome.reason.startswith("failed_quality_gate: phone number")
    assert store.leads["lead-001"].schedule_state == ScheduleState.INVALID
