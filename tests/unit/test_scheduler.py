"""The scheduler step with in-memory ports: claims, limits, dry runs, deadlines, races."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from reengage.domain.clock import format_time
from reengage.domain.leads import FollowUpPolicy, FollowUpStage, Lead, ScheduleState
from reengage.services import scheduler
from reengage.services.scheduler import CampaignRequest, InvalidCampaignRequestError, run_scheduler
from reengage.settings import Settings
from tests.conftest import NOW, ago
from tests.fakes import InMemoryTables, RecordingQueue, template_writer

# Windows and the company pause off: these tests are about other things and some run on the real clock
# (tests/unit/test_send_windows.py and tests/integration/test_send_windows.py cover them).
SETTINGS = Settings(
    leads_table_name="t",
    send_ledger_table_name="l",
    queue_url="q",
    sender_email="sales@example.com",
    send_window="always",
    company_pause_days=0,
)


def lead(number: int, days: float = 8, **changes) -> Lead:
    base = Lead(
        id=f"lead-{number:03d}",
        email=f"person{number}@example.com",
        name=f"Person {number}",
        engagement_status="Sent",
        email_confidence_level="Real",
        last_contacted=ago(days=days),
        response_status="No Response",
    )
    base = replace(base, **changes)
    FollowUpPolicy().reschedule(base)
    return base


def run(store, queue=None, **request):
    queue = queue or RecordingQueue()
    summary = run_scheduler(store.stores, queue, CampaignRequest(**{"days_since_contact": 7, **request}), SETTINGS, NOW)
    return summary, queue


def test_claims_and_enqueues_only_due_leads():
    # Given three due leads, one contacted too recently, one converted
    store = InMemoryTables(
        [lead(1), lead(2), lead(3, follow_up_stage="Followup_1"), lead(4, days=2), lead(5, response_status="Converted")]
    )
    # When the scheduler runs
    summary, queue = run(store)
    # Then the due ones are claimed with their next stage and enqueued
    assert (summary.eligible, summary.marked) == (3, 3)
    assert {(m.lead_id, m.stage) for m in queue.messages} == {
        ("lead-001", FollowUpStage.FOLLOWUP_1),
        ("lead-002", FollowUpStage.FOLLOWUP_1),
        ("lead-003", FollowUpStage.FOLLOWUP_2),
    }
    claimed = store.leads["lead-001"]
    assert claimed.schedule_state == ScheduleState.CLAIMED and claimed.eligible_for_reengagement
    assert store.leads["lead-004"].schedule_state == ScheduleState.DUE
    assert store.leads["lead-005"].schedule_state is None


def test_enqueues_in_batches_of_ten():
    store = InMemoryTables([lead(n) for n in range(23)])
    summary, queue = run(store)
    assert summary.marked == 23
    assert queue.batches == [10, 10, 3]


def test_limit_leaves_the_rest_due_for_the_next_run():
    store = InMemoryTables([lead(n, days=8 + n) for n in range(5)])
    first, queue = run(store, limit=2)
    assert (first.eligible, first.marked, first.left_for_next_run) == (5, 2, 3)
    # The oldest contacts go first.
    assert [m.lead_id for m in queue.messages] == ["lead-004", "lead-003"]
    second, queue2 = run(store, limit=10)
    assert second.marked == 3
    assert {m.lead_id for m in queue.messages} | {m.lead_id for m in queue2.messages} == {
        f"lead-{n:03d}" for n in range(5)
    }


def test_dry_run_changes_nothing_and_enqueues_nothing():
    store = InMemoryTables([lead(1), lead(2)])
    before = {key: replace(value) for key, value in store.leads.items()}
    summary, queue = run(store, dry_run=True)
    assert summary.would_send == [("lead-001", FollowUpStage.FOLLOWUP_1), ("lead-002", FollowUpStage.FOLLOWUP_1)]
    assert queue.messages == [] and summary.marked == 0
    assert store.leads == before


def test_settings_dry_run_forces_a_dry_run():
    request = CampaignRequest.from_event({"days_since_contact": 7}, replace(SETTINGS, dry_run=True))
    assert request.dry_run


def test_stops_claiming_before_the_deadline_and_counts_the_rest_as_the_next_runs(monkeypatch):
    # Given 30 due leads, claimed 4 at a time, and a clock that runs out after three rounds
    monkeypatch.setattr(scheduler, "CLAIM_CHUNK", 4)
    store = InMemoryTables([lead(n) for n in range(30)])
    clock = iter([300_000] * 3 + [10_000] * 100)
    summary = run_scheduler(
        store.stores, RecordingQueue(), CampaignRequest(7), SETTINGS, NOW, time_left_ms=lambda: next(clock)
    )
    # Then it stopped in time, and what it left is counted (LeadsLeftForNextRun), not hidden
    assert summary.stopped_at_deadline and summary.marked == 12
    assert summary.left_for_next_run == 18 and summary.left_count_complete
    states = [item.schedule_state for item in store.leads.values()]
    assert states.count(ScheduleState.CLAIMED) == 12 and states.count(ScheduleState.DUE) == 18


def test_a_claim_another_run_took_first_is_not_enqueued_twice():
    store = InMemoryTables([lead(1), lead(2)])
    # Given another scheduler claims lead-001 between our query and our claim
    schedule = store.stores.schedule
    real_entries = schedule.entries

    def racing_schedule(state, until):
        for entry in real_entries(state, until):
            if entry.lead_id == "lead-001":
                schedule.claim(entry, FollowUpStage.FOLLOWUP_1, format_time(NOW), "other-run")
            yield entry

    schedule.entries = racing_schedule  # type: ignore[method-assign]
    summary, queue = run(store)
    assert summary.lost_race == 1
    assert [m.lead_id for m in queue.messages] == ["lead-002"]


def test_enqueue_failure_releases_the_claim_for_the_next_run():
    store = InMemoryTables([lead(1), lead(2)])
    summary, queue = run(store, queue=RecordingQueue(refuse=["lead-002"]))
    assert (summary.marked, summary.enqueue_failed) == (1, 1)
    assert store.leads["lead-002"].schedule_state == ScheduleState.DUE
    assert not store.leads["lead-002"].eligible_for_reengagement


def test_abandoned_claims_are_claimed_again_after_the_timeout():
    store = InMemoryTables([lead(1), lead(2)])
    run(store)
    # Given the sender never handled those messages (crash, dead-letter queue)
    fresh, _ = run(store)
    assert fresh.marked == 0  # still within the claim timeout
    later = NOW + timedelta(minutes=SETTINGS.claim_timeout_minutes + 1)
    queue = RecordingQueue()
    summary = run_scheduler(store.stores, queue, CampaignRequest(7), SETTINGS, later)
    assert (summary.marked, summary.reclaimed) == (2, 2)
    assert {m.stage for m in queue.messages} == {FollowUpStage.FOLLOWUP_1}


def test_leads_past_max_followups_leave_the_index():
    store = InMemoryTables([lead(1, follow_up_stage="Followup_1")])
    summary = run_scheduler(store.stores, RecordingQueue(), CampaignRequest(7), replace(SETTINGS, max_followups=1), NOW)
    assert summary.eligible == 0
    assert store.leads["lead-001"].schedule_state is None


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"days_since_contact": "7"}, "days_since_contact"),
        ({"days_since_contact": -1}, "days_since_contact"),
        ({"limit": 0}, "limit"),
        ({"limit": True}, "limit"),
        ({"dry_run": "yes"}, "dry_run"),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_malformed_scheduled_events_are_rejected_clearly(event, message):
    with pytest.raises(InvalidCampaignRequestError, match=message):
        CampaignRequest.from_event(event, SETTINGS)


def test_eventbridge_rule_events_use_the_defaults():
    from tests.conftest import load_event

    request = CampaignRequest.from_event(load_event("scheduled-rule"), SETTINGS)
    assert request == CampaignRequest(days_since_contact=7, limit=None, dry_run=False)
    assert CampaignRequest.from_event(load_event("scheduled-dry-run"), SETTINGS) == CampaignRequest(7, 5, True)


def test_one_lead_per_address_per_campaign():
    store = InMemoryTables([lead(1), lead(2, email="PERSON1@example.com"), lead(3)])
    summary, queue = run(store)
    assert summary.duplicate_email == 1 and summary.marked == 2
    assert store.leads["lead-002"].schedule_state == ScheduleState.DUE


def test_abandoned_send_locks_are_settled_as_possibly_sent_and_never_resent():
    from reengage.ports import SendInDoubtError
    from reengage.services.sender import FollowUpSender
    from tests.fakes import RecordingMailer

    store = InMemoryTables([lead(1)])
    queue = RecordingQueue()
    run_scheduler(store.stores, queue, CampaignRequest(7), SETTINGS, NOW)
    mailer = RecordingMailer()
    mailer.fail_with = SendInDoubtError("read timeout")  # the sender loses the answer and dies
    FollowUpSender(store.stores, mailer, template_writer(), SETTINGS, clock=lambda: NOW).send(queue.messages[0])
    assert store.leads["lead-001"].schedule_state == ScheduleState.SENDING
    # A run soon after leaves the lock alone; a run after the lock timeout settles it
    assert run_scheduler(store.stores, RecordingQueue(), CampaignRequest(7), SETTINGS, NOW).settled_in_doubt == 0
    later = run_scheduler(store.stores, RecordingQueue(), CampaignRequest(7), SETTINGS, NOW + timedelta(minutes=16))
    assert later.settled_in_doubt == 1 and later.marked == 0
    settled = store.leads["lead-001"]
    assert settled.follow_up_stage == "Followup_1" and settled.schedule_state == ScheduleState.DUE
    assert settled.engagement_history[-1]["outcome"] == "possibly_sent"
    assert store.ledger[("lead-001", "Followup_1")].state == "possibly_sent"


def test_a_lock_ses_confirmed_is_settled_as_sent_not_possibly_sent():
    from reengage.ports import SendInDoubtError
    from reengage.services.sender import FollowUpSender
    from tests.fakes import RecordingMailer

    store = InMemoryTables([lead(1)])
    queue = RecordingQueue()
    run_scheduler(store.stores, queue, CampaignRequest(7), SETTINGS, NOW)
    mailer = RecordingMailer()
    mailer.fail_with = SendInDoubtError("read timeout")
    FollowUpSender(store.stores, mailer, template_writer(), SETTINGS, clock=lambda: NOW).send(queue.messages[0])
    # SES's Send event arrives while the lock is still held: noted, the state left alone
    assert not store.stores.ledger.confirm("lead-001", FollowUpStage.FOLLOWUP_1, "Send", "ses-1")
    later = run_scheduler(store.stores, RecordingQueue(), CampaignRequest(7), SETTINGS, NOW + timedelta(minutes=16))
    assert later.settled_in_doubt == 1
    assert store.leads["lead-001"].engagement_history[-1]["outcome"] == "sent"
    assert store.ledger[("lead-001", "Followup_1")].state == "sent"


def test_sends_are_spread_at_the_ses_rate_not_released_at_once():
    # Given 25 due leads and an SES rate of 4 emails per second
    store = InMemoryTables([lead(n) for n in range(25)])
    queue = RecordingQueue()
    settings = replace(SETTINGS, ses_max_send_rate=4)
    # When the scheduler runs
    run_scheduler(store.stores, queue, CampaignRequest(days_since_contact=7), settings, NOW)
    # Then no second of delivery carries more than 4 messages, and every second up to the last is used
    per_second: dict[int, int] = {}
    for message in queue.messages:
        per_second[message.delay_seconds] = per_second.get(message.delay_seconds, 0) + 1
    assert len(queue.messages) == 25
    assert max(per_second.values()) == 4
    assert sorted(per_second) == list(range(7))  # ceil(25 / 4) seconds: 0..6


def test_spread_never_exceeds_what_sqs_can_delay():
    from reengage.services.scheduler import MAX_SPREAD_SECONDS, spread_delay

    assert spread_delay(10**9, 1) == MAX_SPREAD_SECONDS == 900  # SQS DelaySeconds maximum


def test_claims_no_more_than_the_senders_may_send_today():
    # Given a cap of 5 sends a day, 1 already sent today, 1 lead claimed an hour ago (still in flight),
    # 1 claim abandoned long ago (this run takes it over) and 8 due leads
    in_flight = lead(90, schedule_state=ScheduleState.CLAIMED, claim_stage="Followup_1")
    in_flight.schedule_state, in_flight.schedule_at = ScheduleState.CLAIMED, format_time(NOW - timedelta(hours=1))
    abandoned = lead(91, claim_stage="Followup_1")
    abandoned.schedule_state, abandoned.schedule_at = ScheduleState.CLAIMED, format_time(NOW - timedelta(days=2))
    store = InMemoryTables([lead(n) for n in range(8)] + [in_flight, abandoned])
    store.daily_sends[NOW.date().isoformat()] = 1
    settings = replace(SETTINGS, max_sends_per_day=5)
    # When a run comes
    summary = run_scheduler(store.stores, RecordingQueue(), CampaignRequest(7), settings, NOW)
    # Then it claims only what may still go out today (5 - 1 sent - 1 in flight), the abandoned claim first
    assert summary.marked == 3 and summary.reclaimed == 1
    assert summary.left_for_next_run == 6
