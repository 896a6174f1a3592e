"""Leads written by other systems (any ISO-8601 form, no derived attributes) and the upkeep commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from reengage import wiring
from reengage.adapters.leads_table import schedule_partition
from reengage.domain.clock import format_time
from reengage.domain.leads import FollowUpPolicy, ScheduleState
from reengage.services.upkeep import cleanup, migrate
from tests.conftest import Emulator, FakeLambdaContext, load_event, load_handler


def put_foreign(aws: Emulator, lead_id: str, **attributes: dict[str, Any]) -> None:
    item = {
        "id": {"S": lead_id},
        "name": {"S": f"Foreign {lead_id}"},
        "email": {"S": f"{lead_id}@example.org"},
        "engagement_status": {"S": "Sent"},
        "email_confidence_level": {"S": "Pattern"},
        **attributes,
    }
    boto3.client("dynamodb").put_item(TableName=aws.settings.leads_table_name, Item=item)


def test_foreign_leads_are_found_after_migrate_and_read_in_any_time_form(aws: Emulator) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=9)
    # Given leads another system wrote, with times in several ISO-8601 forms and no index attributes
    put_foreign(aws, "z-form", last_contacted={"S": old.strftime("%Y-%m-%dT%H:%M:%SZ")})
    put_foreign(aws, "offset-form", last_contacted={"S": old.astimezone(UTC).isoformat()})
    put_foreign(
        aws,
        "fraction-form",
        last_contacted={"S": old.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")},
        engagement_history={"S": '[{"stage": "Initial", "outcome": "sent"}]'},
        response_status={"S": ""},
    )
    put_foreign(aws, "recent", last_contacted={"S": (now - timedelta(days=1)).isoformat()})
    put_foreign(aws, "bad-time", last_contacted={"S": "last week"})
    put_foreign(aws, "bad-type", last_contacted={"N": "12"})
    scheduler = load_handler("scheduler")

    # Then before migrate they are invisible to the index
    assert scheduler.lambda_handler(load_event("scheduled-dry-run"), FakeLambdaContext())["eligible"] == 0

    # When migrate backfills
    stores = wiring.stores(aws.settings)
    report = migrate(stores, FollowUpPolicy(), now)
    # bad-time still gets its defaults; bad-type cannot be read at all
    assert (report.examined, report.updated) == (6, 5)
    assert any("bad-time" in problem for problem in report.problems)
    assert any("bad-type" in problem for problem in report.problems)
    # It is idempotent
    assert migrate(stores, FollowUpPolicy(), now).updated == 0

    # Then the due ones are found, read and sent
    result = scheduler.lambda_handler(load_event("scheduled"), FakeLambdaContext())
    assert result["marked"] == 3
    migrated = stores.leads.get("fraction-form")
    assert migrated is not None
    assert migrated.engagement_history == [{"stage": "Initial", "outcome": "sent"}]
    assert migrated.response_status == "No Response"
    assert migrated.last_contacted == format_time(old)
    raw = boto3.client("dynamodb").get_item(TableName=aws.settings.leads_table_name, Key={"id": {"S": "fraction-form"}})
    assert "L" in raw["Item"]["engagement_history"]


def test_cleanup_releases_stale_claims_and_lists_sends_in_doubt(aws: Emulator) -> None:
    now = datetime.now(UTC)
    old = format_time(now - timedelta(days=40))
    put_foreign(
        aws,
        "stale-claim",
        last_contacted={"S": format_time(now - timedelta(days=50))},
        schedule_state={"S": "claimed"},
        schedule_part={"S": schedule_partition("claimed", "stale-claim")},
        schedule_at={"S": old},
        claim_stage={"S": "Followup_1"},
        eligible_for_reengagement={"BOOL": True},
    )
    put_foreign(
        aws,
        "in-doubt",
        last_contacted={"S": format_time(now - timedelta(days=50))},
        schedule_state={"S": "sending"},
        schedule_part={"S": schedule_partition("sending", "in-doubt")},
        schedule_at={"S": old},
        claim_stage={"S": "Followup_1"},
    )
    stores = wiring.stores(aws.settings)
    report = cleanup(stores, FollowUpPolicy(), 30, now)
    assert report.released == 1 and report.sends_in_doubt == ["in-doubt"]
    released = stores.leads.get("stale-claim")
    assert released is not None
    assert released.schedule_state == ScheduleState.DUE and not released.eligible_for_reengagement
