"""SPEC §4: when a lead is due a follow-up, one criterion at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from reengage.domain.clock import InvalidTimeError, canonical, format_time, parse_time
from reengage.domain.leads import (
    FollowUpPolicy,
    FollowUpStage,
    Lead,
    ScheduleKey,
    ScheduleState,
    SkipReason,
    email_problem,
)
from tests.conftest import NOW, ago

DUE = Lead(
    id="lead-1",
    email="ana@example.com",
    name="Ana Lima",
    company="Acme",
    engagement_status="Sent",
    email_confidence_level="Real",
    last_contacted=ago(days=8),
    response_status="No Response",
)


def verdict(lead: Lead, days: int = 7, max_followups: int = 2):
    return FollowUpPolicy(days, max_followups).due(lead, NOW)


@pytest.mark.parametrize(
    ("changes", "stage", "reason"),
    [
        ({}, FollowUpStage.FOLLOWUP_1, None),
        ({"follow_up_stage": "Followup_1"}, FollowUpStage.FOLLOWUP_2, None),
        ({"follow_up_stage": ""}, FollowUpStage.FOLLOWUP_1, None),
        ({"follow_up_stage": "Followup_2"}, None, SkipReason.SEQUENCE_COMPLETE),
        ({"follow_up_stage": "Followup_9"}, None, SkipReason.UNKNOWN_STAGE),
        ({"response_status": None}, FollowUpStage.FOLLOWUP_1, None),
        ({"response_status": ""}, FollowUpStage.FOLLOWUP_1, None),
        ({"response_status": "Interested"}, None, SkipReason.RESPONDED),
        ({"response_status": "Rejected"}, None, SkipReason.RESPONDED),
        ({"response_status": "Converted"}, None, SkipReason.RESPONDED),
        ({"response_status": "Unsubscribed"}, None, SkipReason.RESPONDED),
        ({"engagement_status": "New"}, None, SkipReason.NOT_SENT),
        ({"engagement_status": ""}, None, SkipReason.NOT_SENT),
        ({"email_confidence_level": "Pattern"}, FollowUpStage.FOLLOWUP_1, None),
        ({"email_confidence_level": "Guess"}, None, SkipReason.LOW_CONFIDENCE),
        ({"email_confidence_level": ""}, None, SkipReason.LOW_CONFIDENCE),
        ({"email": "not-an-address"}, None, SkipReason.INVALID_EMAIL),
        ({"email": ""}, None, SkipReason.INVALID_EMAIL),
        ({"suppressed": True}, None, SkipReason.SUPPRESSED),
        ({"last_contacted": None}, None, SkipReason.NO_LAST_CONTACTED),
        ({"last_contacted": "last tuesday"}, None, SkipReason.NO_LAST_CONTACTED),
        ({"last_contacted": ago(days=3)}, None, SkipReason.NOT_DUE_YET),
    ],
)
def test_each_criterion_decides_eligibility(changes, stage, reason):
    # Given a due lead with one attribute changed
    lead = replace(DUE, **changes)
    # When the rules are applied
    result = verdict(lead)
    # Then the stage and the reason are the expected ones
    assert (result.stage if result.due else None, result.reason) == (stage, reason)


def test_seven_day_boundary_is_inclusive():
    exactly = replace(DUE, last_contacted=(NOW - timedelta(days=7)).isoformat())
    one_second_short = replace(DUE, last_contacted=(NOW - timedelta(days=7) + timedelta(seconds=1)).isoformat())
    assert verdict(exactly).due
    assert verdict(one_second_short).reason is SkipReason.NOT_DUE_YET


def test_days_since_contact_is_a_parameter():
    lead = replace(DUE, last_contacted=ago(days=4))
    assert not verdict(lead, days=7).due
    assert verdict(lead, days=3).due


def test_max_followups_one_ends_after_first_stage():
    lead = replace(DUE, follow_up_stage="Followup_1")
    assert verdict(lead, max_followups=1).reason is SkipReason.SEQUENCE_COMPLETE
    assert FollowUpPolicy(max_followups=1).next_stage(None).stage is FollowUpStage.FOLLOWUP_1


@pytest.mark.parametrize(
    "written",
    [
        "2026-11-16T09:00:00Z",
        "2026-11-16T09:00:00+00:00",
        "2026-11-16T09:00:00.123456Z",
        "2026-11-16T09:00:00.5+00:00",
        "2026-11-16T10:00:00+01:00",
        "2026-11-16T09:00:00",
        "2026-11-16 09:00:00",
    ],
)
def test_every_iso_form_means_the_same_instant(written):
    moment = parse_time(written)
    assert moment.utcoffset() == timedelta(0)
    assert moment.replace(microsecond=0) == datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    assert canonical(written).startswith("2026-11-16T09:00:00.")


def test_canonical_times_sort_as_text_in_time_order():
    times = ["2026-11-16T09:00:00.5Z", "2026-11-16T10:00:00+02:00", "2026-11-16T08:59:59Z"]
    assert sorted(canonical(t) for t in times) == [canonical(t) for t in sorted(times, key=parse_time)]


def test_unparseable_time_is_a_clear_error():
    with pytest.raises(InvalidTimeError, match="not an ISO-8601 time"):
        parse_time("16/11/2026")


def test_schedule_keys_only_for_leads_that_can_still_get_a_follow_up():
    policy = FollowUpPolicy()
    # With no send window the sort key is the last contact plus the days between follow-ups.
    due_at = parse_time(DUE.last_contacted or "") + timedelta(days=policy.days_between_followups)
    assert policy.schedule_key(DUE) == ScheduleKey(ScheduleState.DUE, format_time(due_at))
    assert policy.schedule_key(replace(DUE, response_status="Converted")) is None
    assert policy.schedule_key(replace(DUE, follow_up_stage="Followup_2")) is None
    # Time does not matter for the index: a lead contacted yesterday waits in it.
    assert policy.schedule_key(replace(DUE, last_contacted=ago(days=1))) is not None


def test_the_scheduler_cutoff_and_due_agree_at_the_boundary():
    # Given a lead contacted exactly seven days ago, and one a second later
    policy = FollowUpPolicy(days_between_followups=7)
    exactly = replace(DUE, last_contacted=ago(days=7))
    later = replace(DUE, last_contacted=(NOW - timedelta(days=7) + timedelta(seconds=1)).isoformat())
    # Then the index range read and due() give the same answer for both
    for lead, expected in ((exactly, True), (later, False)):
        key = policy.schedule_key(lead)
        assert key is not None
        assert (key.at <= policy.due_cutoff(NOW)) is expected
        assert policy.due(lead, NOW).due is expected


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("ana@example.com", True),
        ("ana.lima+sales@sub.example.co.uk", True),
        ("ana@bücher.de", True),
        ("ana@xn--bcher-kva.de", True),
        ("ana@example", False),
        ("ana@@example.com", False),
        ("ana lima@example.com", False),
        ("ana@example.com\r\nBcc: x@evil.com", False),
        ("anä@example.com", False),
        (".ana@example.com", False),
        ("ana@-example.com", False),
        ("a" * 65 + "@example.com", False),
    ],
)
def test_email_validation(address, valid):
    assert (email_problem(address) is None) is valid
