"""Bad data that reaches the pipeline without going through `reengage import`: written straight to DynamoDB."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from reengage.adapters.leads_table import schedule_partition
from reengage.domain.clock import format_time
from tests.conftest import Emulator, FakeLambdaContext, load_event, load_handler
from tests.integration.test_pipeline import as_sqs_event, receive_all


def put_lead(aws: Emulator, lead_id: str, **attributes: str) -> None:
    contacted = format_time(datetime.now(UTC) - timedelta(days=9))
    item: dict[str, Any] = {
        "id": {"S": lead_id},
        "engagement_status": {"S": "Sent"},
        "email_confidence_level": {"S": "Real"},
        "response_status": {"S": "No Response"},
        "last_contacted": {"S": contacted},
        "schedule_state": {"S": "due"},
        "schedule_part": {"S": schedule_partition("due", lead_id)},
        "schedule_at": {"S": contacted},
        **{name: {"S": value} for name, value in attributes.items()},
    }
    boto3.client("dynamodb").put_item(TableName=aws.settings.leads_table_name, Item=item)


def run_campaign(aws: Emulator) -> tuple[dict[str, Any], dict[str, Any]]:
    scheduled = load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    sent = load_handler("sender").lambda_handler(as_sqs_event(receive_all(aws.settings.queue_url)), FakeLambdaContext())
    return scheduled, sent


def raw_messages() -> list[email.message.EmailMessage]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return [
        email.message_from_string(message.raw_data, policy=email.policy.default)
        for message in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    ]


def test_unicode_names_idn_domains_and_header_injection(aws: Emulator) -> None:
    put_lead(aws, "idn", name="Zoë Ångström", email="zoe@bücher.de", company="Bücher & Co")
    put_lead(aws, "crlf", name="Eve\r\nBcc: victim@example.org", email="eve@example.com", company="Evil\nCorp")
    put_lead(aws, "huge", name="Hugo " + "x" * 20_000, email="hugo@example.com", company="C" * 50_000)
    scheduled, sent = run_campaign(aws)
    assert scheduled["marked"] == 3 and sent == {"batchItemFailures": []}
    messages = {str(message["To"].addresses[0].username): message for message in raw_messages()}
    assert set(messages) == {"zoe", "eve", "hugo"}
    assert messages["zoe"]["To"].addresses[0].domain == "xn--bcher-kva.de"
    plain = messages["zoe"].get_body(("plain",))
    assert plain is not None and "Zoë" in str(messages["zoe"]["To"])
    assert "Bücher & Co" in messages["zoe"]["Subject"] + str(plain.get_content())
    eve = messages["eve"]
    # The injected header stays inside the quoted display name: one recipient, no Bcc.
    assert eve["Bcc"] is None and [a.addr_spec for a in eve["To"].addresses] == ["eve@example.com"]
    assert "\n" not in str(eve["Subject"])
    assert len(str(messages["hugo"]["To"])) < 200 and len(str(messages["hugo"]["Subject"])) < 120


def test_duplicate_addresses_get_one_email_per_campaign(aws: Emulator) -> None:
    put_lead(aws, "a", name="Ann", email="ann@example.com")
    put_lead(aws, "b", name="Ann B", email="ANN@example.com")
    scheduled, _ = run_campaign(aws)
    assert (scheduled["marked"], scheduled["duplicate_email"]) == (1, 1)
    assert len(raw_messages()) == 1


def test_wrong_attribute_types_are_skipped_not_crashing_the_batch(aws: Emulator) -> None:
    put_lead(aws, "good", name="Gail", email="gail@example.com")
    put_lead(aws, "bad", name="Bart", email="bart@example.com")
    boto3.client("dynamodb").update_item(
        TableName=aws.settings.leads_table_name,
        Key={"id": {"S": "bad"}},
        UpdateExpression="SET last_contacted = :n",
        ExpressionAttributeValues={":n": {"N": "7"}},
    )
    _, sent = run_campaign(aws)
    assert sent == {"batchItemFailures": []}
    assert [str(m["To"].addresses[0].username) for m in raw_messages()] == ["gail"]
