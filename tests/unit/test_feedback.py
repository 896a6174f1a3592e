"""Responses stop sequences at once; unsubscribes, bounces and complaints suppress the address for good."""

from __future__ import annotations

import pytest

from reengage.domain.leads import FollowUpPolicy, ResponseStatus, ScheduleState
from reengage.services.responses import UnknownLeadError, record_response
from reengage.services.scheduler import CampaignRequest, run_scheduler
from reengage.services.sender import SKIPPED, FollowUpSender
from tests.conftest import NOW
from tests.fakes import InMemoryTables, RecordingMailer, RecordingQueue, template_writer
from tests.unit.test_scheduler import SETTINGS, lead


def test_a_reply_stops_the_sequence_and_resuming_puts_it_back():
    store = InMemoryTables([lead(1)])
    assert record_response(store.stores, "lead-001", ResponseStatus.INTERESTED, "cli", NOW, FollowUpPolicy())
    stopped = store.leads["lead-001"]
    assert stopped.schedule_state is None and stopped.response_status == "Interested" and not stopped.suppressed
    assert stopped.engagement_history[-1] | {} == {
        "outcome": "response",
        "status": "Interested",
        "source": "cli",
        "at": "2026-11-24T09:00:00.000000Z",
    }
    assert not record_response(
        store.stores, "lead-001", ResponseStatus.INTERESTED, "cli", NOW, FollowUpPolicy()
    )  # idempotent
    assert record_response(store.stores, "lead-001", ResponseStatus.NO_RESPONSE, "cli", NOW, FollowUpPolicy())
    assert store.leads["lead-001"].schedule_state == ScheduleState.DUE


def test_unsubscribe_suppresses_every_lead_with_that_address():
    store = InMemoryTables([lead(1), lead(2, email="PERSON1@example.com")])
    record_response(store.stores, "lead-001", ResponseStatus.UNSUBSCRIBED, "one-click", NOW, FollowUpPolicy())
    assert store.leads["lead-001"].suppressed and store.is_suppressed("person1@example.com")
    # The other lead with the same address is claimed by a later run, but never mailed
    queue = RecordingQueue()
    run_scheduler(store.stores, queue, CampaignRequest(7), SETTINGS, NOW)
    mailer = RecordingMailer()
    outcome = FollowUpSender(store.stores, mailer, template_writer(), SETTINGS, clock=lambda: NOW).send(
        queue.messages[0]
    )
    assert outcome.kind == SKIPPED and outcome.reason.startswith("suppressed")
    assert mailer.sent == [] and store.leads["lead-002"].schedule_state is None


def test_a_lead_that_unsubscribes_between_claim_and_send_is_not_emailed():
    store = InMemoryTables([lead(1)])
    queue = RecordingQueue()
    run_scheduler(store.stores, queue, CampaignRequest(7), SETTINGS, NOW)
    record_response(store.stores, "lead-001", ResponseStatus.UNSUBSCRIBED, "one-click", NOW, FollowUpPolicy())
    assert store.leads["lead-001"].schedule_state == ScheduleState.CLAIMED  # the sender decides
    mailer = RecordingMailer()
    outcome = FollowUpSender(store.stores, mailer, template_writer(), SETTINGS, clock=lambda: NOW).send(
        queue.messages[0]
    )
    assert outcome.kind == SKIPPED and outcome.reason == "responded: Unsubscribed"
    assert mailer.sent == []


def test_unknown_lead():
    with pytest.raises(UnknownLeadError, match="no lead with id 'ghost'"):
        record_response(InMemoryTables().stores, "ghost", ResponseStatus.CONVERTED, "cli", NOW, FollowUpPolicy())
