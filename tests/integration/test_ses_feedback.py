"""SES events (real-shaped SNS notifications from events/) through FeedbackFunction on the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reengage import wiring
from reengage.domain.correlation import decode_tag, encode_tag
from reengage.domain.leads import FollowUpStage, ScheduleState
from reengage.domain.ses_events import parse_notification
from tests.conftest import Emulator, FakeLambdaContext, load_event, load_handler
from tests.integration.test_pipeline import as_sqs_event, lead_row, receive_all, seed


def sent_lead(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(1)])
    load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    load_handler("sender").lambda_handler(as_sqs_event(receive_all(aws.settings.queue_url)), FakeLambdaContext())


def feedback(event: dict[str, Any]) -> dict[str, int]:
    return dict(load_handler("feedback").lambda_handler(event, FakeLambdaContext()))


@pytest.mark.parametrize(
    ("fixture", "outcome", "status"),
    [("ses-bounce", "hard_bounce", "Bounced"), ("ses-complaint", "complaint", "Complained")],
)
def test_hard_bounces_and_complaints_stop_and_suppress(
    aws: Emulator, tmp_path: Path, fixture: str, outcome: str, status: str
) -> None:
    sent_lead(aws, tmp_path)
    assert feedback(load_event(fixture)) == {outcome: 1}
    stores = wiring.stores(aws.settings)
    lead = stores.leads.get("lead-001")
    assert lead is not None and lead.response_status == status and lead.suppressed
    assert lead.schedule_state is None  # no Followup_2
    assert stores.suppression.is_suppressed("person1@example.com")


def test_soft_bounce_is_counted_only(aws: Emulator, tmp_path: Path) -> None:
    sent_lead(aws, tmp_path)
    assert feedback(load_event("ses-soft-bounce")) == {"soft_bounce": 1}
    lead = wiring.stores(aws.settings).leads.get("lead-001")
    assert lead is not None and lead.response_status == "No Response" and lead.schedule_state == ScheduleState.DUE


def test_a_delivery_is_noted_on_the_ledger_in_one_write(aws: Emulator, tmp_path: Path) -> None:
    sent_lead(aws, tmp_path)
    stores = wiring.stores(aws.settings)
    before = stores.leads.get("lead-001")
    assert feedback(load_event("ses-delivery")) == {"delivery": 1}
    # The ledger record holds the delivery and SES's message id (for replies naming it) ...
    record = stores.ledger.record("lead-001", FollowUpStage.FOLLOWUP_1)
    assert record is not None and record.confirmed == "Delivery"
    assert record.message_id == "0100019a1b2c3d4e-5f6a7b8c-9d0e-1f2a-3b4c-5d6e7f8a9b0c-000000"
    assert stores.ledger.lead_for_message(record.message_id) == "lead-001"
    # ... and the lead is not rewritten for it (a delivery costs one small write, not a lead's)
    assert stores.leads.get("lead-001") == before


def test_a_delivery_resolves_a_send_recorded_as_possibly_sent(aws: Emulator, tmp_path: Path) -> None:
    import boto3

    sent_lead(aws, tmp_path)
    # As if the sender had died after SES accepted the email and the scheduler had settled it
    boto3.client("dynamodb").update_item(
        TableName=aws.settings.send_ledger_table_name,
        Key={"lead_id": {"S": "lead-001"}, "stage": {"S": "Followup_1"}},
        UpdateExpression="SET #s = :p",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":p": {"S": "possibly_sent"}},
    )
    assert feedback(load_event("ses-delivery")) == {"possibly_sent_resolved": 1}
    stores = wiring.stores(aws.settings)
    record = stores.ledger.record("lead-001", FollowUpStage.FOLLOWUP_1)
    assert record is not None and record.state == "sent"
    lead = stores.leads.get("lead-001")
    assert lead is not None and lead.engagement_history[-1]["outcome"] == "confirmed_sent"


def test_malformed_and_untagged_notifications(aws: Emulator) -> None:
    bad = {"Records": [{"Sns": {"Message": "not json"}}, {"Sns": {"Message": json.dumps({"hello": 1})}}]}
    assert feedback(bad) == {"malformed": 2}
    untagged = load_event("ses-delivery")
    message = json.loads(untagged["Records"][0]["Sns"]["Message"])
    message["mail"]["tags"] = {}
    untagged["Records"][0]["Sns"]["Message"] = json.dumps(message)
    assert feedback(untagged) == {"ignored_untagged": 1}


def test_tags_round_trip_any_lead_id() -> None:
    for lead_id in ["lead-001", "a.b@c", "h_x", "ünïcode id"]:
        encoded = encode_tag(lead_id)
        assert all(ch.isalnum() or ch in "_-" for ch in encoded) and decode_tag(encoded) == lead_id
    event = parse_notification(load_event("ses-bounce")["Records"][0]["Sns"]["Message"])
    assert (event.kind, event.lead_id, event.stage, event.hard_bounce) == ("Bounce", "lead-001", "Followup_1", True)
