"""Send windows and the company-wide pause, end to end on the emulator over HTTP, with the
deployment's defaults (Mon-Fri 08:00-11:00 in each lead's own zone, holidays, a 14-day pause).

The oracle is independent of reengage's window code: each recorded send time is converted
to the lead's zone with zoneinfo and checked against the configured hours and weekdays.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reengage import wiring
from reengage.domain.clock import parse_time
from reengage.domain.leads import ResponseStatus, ScheduleState
from reengage.observability import send_outcome_metrics
from reengage.services.imports import import_rows
from reengage.services.responses import record_response
from reengage.services.scheduler import CampaignRequest, run_scheduler
from reengage.services.sender import SendOutcome
from reengage_cli.drain import build_sender, drain_queue
from tests.conftest import TIMELESS, Emulator, provisioned_emulator

MONDAY_0730 = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)


def row(lead_id: str, email: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": lead_id,
        "name": lead_id.title(),
        "email": email,
        "company": lead_id.title(),
        "engagement_status": "Sent",
        "email_confidence_level": "Real",
        "last_contacted": "2026-11-20T10:00:00Z",  # due Friday 2026-11-27 10:00Z before windows
        **changes,
    }


LEADS = [
    row("berlin", "kai@kraftwerk.de"),  # Fri 11:00 CET: window closed -> Mon 08:00 CET
    row("singapore", "ann@acme-sg.com", timezone="Asia/Singapore"),
    row("newyork", "bo@acme-us.com", country="United States"),
    row("kiritimati", "kai@line-islands.com", timezone="Pacific/Kiritimati"),  # UTC+14
    row("baker", "bo@baker-island.com", timezone="Etc/GMT+12"),  # UTC-12
    row("christmas", "eva@kraftwerk-two.de", last_contacted="2026-12-18T09:00:00Z"),
    row("globex-ann", "ann@globex.com"),
    row("globex-bob", "bob@globex.com"),
    row("gmail-cy", "cy@gmail.com"),
    row("gmail-di", "di@gmail.com"),
]


@pytest.fixture
def windows(moto_endpoint: str, restore_environ: None) -> Iterator[Emulator]:
    with provisioned_emulator(moto_endpoint, {}) as aws:  # the template's defaults: windows and the pause on
        report = import_rows(
            wiring.stores(aws.settings),
            enumerate(LEADS, start=1),
            datetime(2026, 12, 19, tzinfo=UTC),  # after every last contact (none may be in the future)
            aws.settings.policy,
        )
        assert not report.rejected, report.rejected
        assert report.zone_sources == {"timezone": 3, "country": 1, "email domain": 2, "default": 4}
        yield aws


def campaign(aws: Emulator, now: datetime) -> list[SendOutcome]:
    settings = aws.settings
    stores = wiring.stores(settings)
    run_scheduler(stores, wiring.follow_up_queue(settings), CampaignRequest(7), settings, now)
    sender = build_sender(settings)
    sender.clock = lambda: now
    return drain_queue(wiring.client("sqs"), settings.queue_url, sender).outcomes


def by_kind(outcomes: list[SendOutcome]) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {}
    for outcome in outcomes:
        kinds.setdefault(outcome.kind if outcome.kind != "deferred" else f"deferred:{outcome.reason}", set()).add(
            outcome.lead_id
        )
    return kinds


def schedule_at(aws: Emulator, lead_id: str) -> str | None:
    lead = wiring.stores(aws.settings).leads.get(lead_id)
    assert lead is not None
    return lead.schedule_at


def test_due_times_are_the_first_local_window_slot(windows: Emulator) -> None:
    expected = {
        "berlin": "2026-11-30T07:00:00.000000Z",  # Mon 08:00 CET
        "singapore": "2026-11-30T00:00:00.000000Z",  # Mon 08:00 SGT
        "newyork": "2026-11-27T13:00:00.000000Z",  # Fri 08:00 EST, the same day
        "kiritimati": "2026-11-29T18:00:00.000000Z",  # Mon 08:00 LINT is Sunday in UTC
        "baker": "2026-11-27T20:00:00.000000Z",  # Fri 08:00 at UTC-12
        "christmas": "2026-12-28T07:00:00.000000Z",  # Fri 25 Dec is a German holiday, then the weekend
        "gmail-cy": "2026-11-27T10:00:00.000000Z",  # no zone to infer: DefaultTimezone (UTC), in window
    }
    assert {lead_id: schedule_at(windows, lead_id) for lead_id in expected} == expected


def test_nothing_goes_out_outside_the_leads_window_and_late_leads_move_to_the_next_one(
    windows: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # Monday 07:30 UTC: Berlin is at 08:30; Singapore (15:30) and New York (02:30) missed or await theirs.
    outcomes = campaign(windows, MONDAY_0730)
    first = by_kind(outcomes)
    assert "berlin" in first["sent"]
    assert {"singapore", "newyork", "baker", "kiritimati"} <= first["deferred:outside_send_window"]
    assert schedule_at(windows, "newyork") == "2026-11-30T13:00:00.000000Z"  # its next window, not late
    # The dashboard's "sends by local hour" and "deferred by reason" metrics
    capsys.readouterr()
    send_outcome_metrics(outcomes, retried=0)
    printed = capsys.readouterr().out
    assert '"FollowUpsDeferred"' in printed and '"Reason":"outside_send_window"' in printed
    assert '"FollowUpsSentByLocalHour"' in printed and '"LocalHour":"08"' in printed

    # A run at 07:45 claims none of them again: their keys moved past now.
    assert campaign(windows, MONDAY_0730.replace(minute=45)) == []
    second = by_kind(campaign(windows, datetime(2026, 11, 30, 13, 5, tzinfo=UTC)))
    assert "newyork" in second["sent"]
    third = by_kind(campaign(windows, datetime(2026, 12, 1, 0, 10, tzinfo=UTC)))
    assert "singapore" in third["sent"]

    # The independent check: every send happened inside 08:00-11:00 Mon-Fri on the lead's own clock.
    stores = wiring.stores(windows.settings)
    zones = {"berlin": "Europe/Berlin", "newyork": "America/New_York", "singapore": "Asia/Singapore"}
    for lead_id, zone in zones.items():
        lead = stores.leads.get(lead_id)
        assert lead is not None
        sends = [entry for entry in lead.engagement_history if entry.get("outcome") == "sent"]
        assert len(sends) == 1, lead_id
        local = parse_time(sends[0]["at"]).astimezone(ZoneInfo(zone))
        assert local.weekday() < 5 and 8 <= local.hour < 11, (lead_id, local)


def test_a_reply_pauses_colleagues_but_never_everyone_at_a_public_mail_provider(windows: Emulator) -> None:
    stores, policy = wiring.stores(windows.settings), windows.settings.policy
    replied_at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    record_response(stores, "globex-ann", ResponseStatus.REPLIED, "reply", replied_at, policy)
    record_response(stores, "gmail-cy", ResponseStatus.REPLIED, "reply", replied_at, policy)

    bob, di = stores.leads.get("globex-bob"), stores.leads.get("gmail-di")
    assert bob is not None and di is not None
    assert bob.paused_until == "2026-12-14T08:00:00.000000Z"
    assert bob.engagement_history[-1] | {"at": ""} == {
        "outcome": "paused",
        "reason": "company_pause",
        "by_lead": "globex-ann",
        "status": "Replied",
        "until": "2026-12-14T08:00:00.000000Z",
        "at": "",
    }
    assert bob.schedule_state == ScheduleState.DUE and bob.schedule_at == "2026-12-14T08:00:00.000000Z"
    assert di.paused_until is None  # gmail.com is not a company

    sent = by_kind(campaign(windows, datetime(2026, 11, 30, 8, 30, tzinfo=UTC))).get("sent", set())
    assert "gmail-di" in sent and "globex-bob" not in sent

    # `reengage mark globex-bob "No Response"` lifts the pause: the next run sends.
    assert record_response(stores, "globex-bob", ResponseStatus.NO_RESPONSE, "cli", replied_at, policy)
    assert "globex-bob" in by_kind(campaign(windows, datetime(2026, 11, 30, 8, 45, tzinfo=UTC)))["sent"]


def test_a_claimed_lead_paused_before_its_send_is_deferred_not_sent(windows: Emulator) -> None:
    settings, stores = windows.settings, wiring.stores(windows.settings)
    now = datetime(2026, 11, 30, 8, 30, tzinfo=UTC)
    run_scheduler(stores, wiring.follow_up_queue(settings), CampaignRequest(7), settings, now)
    assert stores.leads.get("globex-bob") is not None
    # Ann replies after Bob's claim, before the sender gets to him.
    record_response(stores, "globex-ann", ResponseStatus.INTERESTED, "reply", now, settings.policy)
    sender = build_sender(settings)
    sender.clock = lambda: now
    outcomes = {o.lead_id: o for o in drain_queue(wiring.client("sqs"), settings.queue_url, sender).outcomes}
    assert (outcomes["globex-bob"].kind, outcomes["globex-bob"].reason) == ("deferred", "company_paused")
    assert schedule_at(windows, "globex-bob") == "2026-12-14T08:30:00.000000Z"


def test_a_run_is_spread_at_the_ses_rate_by_sqs_delivery_delays(moto_endpoint: str, restore_environ: None) -> None:
    # Given 7 due leads and an account that may send 2 emails per second
    with provisioned_emulator(moto_endpoint, {**TIMELESS, "SesMaxSendRate": "2"}) as aws:
        settings = aws.settings
        rows = [row(f"lead-{n}", f"p{n}@spread-{n}.com") for n in range(7)]
        import_rows(wiring.stores(settings), enumerate(rows, start=1), MONDAY_0730, settings.policy)
        run_scheduler(
            wiring.stores(settings), wiring.follow_up_queue(settings), CampaignRequest(7), settings, MONDAY_0730
        )
        # Then SQS itself holds all but the first second's 2 back (the queue's own counters are the oracle)
        sqs = wiring.client("sqs")
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
        counts = sqs.get_queue_attributes(QueueUrl=settings.queue_url, AttributeNames=names)["Attributes"]
        assert (int(counts[names[0]]), int(counts[names[1]])) == (2, 5)
        # And the drain waits for them like Lambda's poller: every lead is sent, over at least 3 seconds
        sender = build_sender(settings)
        sender.clock = lambda: MONDAY_0730
        started = time.monotonic()
        outcomes = drain_queue(sqs, settings.queue_url, sender).outcomes
        assert sorted(o.lead_id for o in outcomes if o.kind == "sent") == sorted(r["id"] for r in rows)
        assert time.monotonic() - started >= 2.5


def test_status_lists_the_next_sends_in_local_time_and_utc_in_due_order(windows: Emulator) -> None:
    from tests.integration.test_cli import reengage

    result = reengage("status", "--next", "10")
    assert result.returncode == 0, result.stderr
    lines = [
        line.split() for line in result.stdout.splitlines() if line.strip().endswith(tuple(r["id"] for r in LEADS))
    ]
    shown = {fields[-1]: " ".join(fields[:-1]) for fields in lines}
    assert shown["newyork"] == "2026-11-27 13:00 UTC Fri 2026-11-27 08:00 America/New_York"
    assert shown["christmas"] == "2026-12-28 07:00 UTC Mon 2026-12-28 08:00 Europe/Berlin"
    assert shown["kiritimati"] == "2026-11-29 18:00 UTC Mon 2026-11-30 08:00 Pacific/Kiritimati"
    utc = [" ".join(fields[:2]) for fields in lines]
    assert utc == sorted(utc) and len(lines) == 10


def test_undoing_the_response_that_paused_a_company_lifts_its_pause(windows: Emulator) -> None:
    stores, policy = wiring.stores(windows.settings), windows.settings.policy
    at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    record_response(stores, "globex-ann", ResponseStatus.REPLIED, "reply", at, policy)
    bob = stores.leads.get("globex-bob")
    assert bob is not None and bob.paused_until
    # `reengage mark globex-ann "No Response"`: the reply was recorded by mistake
    assert record_response(stores, "globex-ann", ResponseStatus.NO_RESPONSE, "cli", at, policy)
    bob = stores.leads.get("globex-bob")
    assert bob is not None and bob.paused_until is None
    assert bob.engagement_history[-1]["outcome"] == "resumed" and bob.engagement_history[-1]["by_lead"] == "globex-ann"
    assert bob.schedule_at == "2026-11-27T10:00:00.000000Z"  # due again at its own time, before the pause
    assert "globex-bob" in by_kind(campaign(windows, datetime(2026, 11, 30, 8, 30, tzinfo=UTC)))["sent"]


def test_a_response_arriving_by_re_import_pauses_colleagues_too(windows: Emulator) -> None:
    stores, policy = wiring.stores(windows.settings), windows.settings.policy
    at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    # The CRM export now says Ann replied
    rows = [row("globex-ann", "ann@globex.com", response_status="Replied")]
    report = import_rows(stores, enumerate(rows, start=1), at, policy)
    assert not report.rejected, report.rejected
    bob = stores.leads.get("globex-bob")
    assert bob is not None and bob.paused_until == "2026-12-14T08:00:00.000000Z"
    assert bob.engagement_history[-1]["by_lead"] == "globex-ann"
    # A lead first seen with a response is history: importing it pauses nobody
    first = [row("initech-ivy", "ivy@initech.com"), row("initech-ian", "ian@initech.com", response_status="Replied")]
    assert not import_rows(stores, enumerate(first, start=1), at, policy).rejected
    ivy = stores.leads.get("initech-ivy")
    assert ivy is not None and ivy.paused_until is None


def test_a_dry_run_says_which_due_leads_the_sender_would_defer(windows: Emulator) -> None:
    from tests.integration.test_cli import reengage

    result = reengage("run", "--dry-run", "--now", "2026-11-30T07:30:00Z")
    assert result.returncode == 0, result.stderr
    deferred = {line.split(":", 1)[0] for line in result.stdout.splitlines() if "outside its send window now" in line}
    # Monday 07:30 UTC: Berlin (08:30) is in its window; Singapore (15:30) and New York (02:30) are not
    assert {"singapore", "newyork"} <= deferred and "berlin" not in deferred
    assert "would be deferred to their next send window" in result.stdout
