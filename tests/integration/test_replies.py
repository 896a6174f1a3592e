"""Replies (SES receipt rule -> S3 -> ReplyFunction) on the emulator, with real-shaped inbound mail from events/."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from reengage import wiring
from reengage.domain.leads import FollowUpStage, ScheduleState
from reengage.domain.replies import classify
from reengage.settings import Settings
from reengage_cli.emulator import provision
from tests.conftest import EVENTS, TIMELESS, Emulator, FakeLambdaContext, load_event, load_handler
from tests.integration.test_pipeline import as_sqs_event, lead_row, receive_all, seed
from tests.openai_stub import Reply

SAMPLE_SES_ID = "0100019a1b2c3d4e-5f6a7b8c-9d0e-1f2a-3b4c-5d6e7f8a9b0c-000000"
SAMPLE_BUCKET = "reengage-inbound-mail"  # the bucket named in events/s3-inbound-reply.json
inbound_bucket = ""


@pytest.fixture
def aws(aws: Emulator) -> Emulator:
    """The stack deployed with reply detection on: the inbound bucket and ReplyFunction's role exist."""
    global inbound_bucket
    provisioned = provision.provision({**TIMELESS, "InboundDomain": "inbound.example.com"})
    os.environ.update(provisioned.environment)
    inbound_bucket = provisioned.resources["InboundMailBucket"]
    return Emulator(aws.endpoint, provisioned.environment, Settings.from_env(os.environ))


def sent_lead(aws: Emulator, tmp_path: Path) -> str:
    seed(aws, tmp_path, [lead_row(1, email="emma.watson@healthtechlabs.io", name="Emma Watson")])
    load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    load_handler("sender").lambda_handler(as_sqs_event(receive_all(aws.settings.queue_url)), FakeLambdaContext())
    # SES's Delivery event notes the id SES assigned on the ledger record (FeedbackFunction), as in AWS
    lead = wiring.stores(aws.settings).leads.get("lead-001")
    assert lead is not None
    ses_id = str(lead.engagement_history[-1]["message_id"])
    delivery = json.loads(json.dumps(load_event("ses-delivery")).replace(SAMPLE_SES_ID, ses_id))
    assert load_handler("feedback").lambda_handler(delivery, FakeLambdaContext()) == {"delivery": 1}
    record = wiring.stores(aws.settings).ledger.record("lead-001", FollowUpStage.FOLLOWUP_1)
    assert record is not None and record.message_id == ses_id
    return record.message_id


def deliver(raw: str) -> dict[str, int]:
    # What SES's receipt rule does: the mail lands in the stack's bucket, S3 notifies ReplyFunction
    boto3.client("s3").put_object(Bucket=inbound_bucket, Key="inbound/inbound-reply.eml", Body=raw.encode())
    event = json.loads(json.dumps(load_event("s3-inbound-reply")).replace(SAMPLE_BUCKET, inbound_bucket))
    return dict(load_handler("reply").lambda_handler(event, FakeLambdaContext()))


def inbound(name: str, ses_id: str) -> str:
    return (EVENTS / name).read_text().replace(SAMPLE_SES_ID, ses_id)


def test_a_real_reply_stops_the_sequence(aws: Emulator, tmp_path: Path) -> None:
    ses_id = sent_lead(aws, tmp_path)
    # The follow-up told the lead where to reply
    assert deliver(inbound("inbound-reply.eml", ses_id)) == {"reply_interested": 1}
    lead = wiring.stores(aws.settings).leads.get("lead-001")
    assert lead is not None and lead.response_status == "Interested" and lead.schedule_state is None
    assert lead.engagement_history[-1]["matched_by"] == "thread"


def test_an_out_of_office_reply_does_not(aws: Emulator, tmp_path: Path) -> None:
    ses_id = sent_lead(aws, tmp_path)
    assert deliver(inbound("inbound-out-of-office.eml", ses_id)) == {"automatic_ignored": 1}
    lead = wiring.stores(aws.settings).leads.get("lead-001")
    assert lead is not None and lead.response_status == "No Response" and lead.schedule_state == ScheduleState.DUE


def test_a_reply_without_thread_headers_is_matched_by_sender(aws: Emulator, tmp_path: Path) -> None:
    sent_lead(aws, tmp_path)
    raw = inbound("inbound-reply.eml", "unknown-id").replace("Let's talk", "No thanks, we are not interested")
    assert deliver(raw) == {"reply_rejected": 1}
    lead = wiring.stores(aws.settings).leads.get("lead-001")
    assert lead is not None and lead.response_status == "Rejected"
    assert lead.engagement_history[-1]["matched_by"] == "sender"


def test_mail_from_strangers_is_unmatched(aws: Emulator, tmp_path: Path) -> None:
    sent_lead(aws, tmp_path)
    raw = inbound("inbound-reply.eml", "unknown-id").replace("emma.watson@healthtechlabs.io", "someone@else.example")
    raw = raw.replace("healthtechlabs.io", "else.example")  # SES's verdicts are for the stranger's own domain
    assert deliver(raw) == {"unmatched": 1}


def test_follow_ups_ask_for_replies_at_the_inbound_address(aws: Emulator, tmp_path: Path) -> None:
    import os

    os.environ["REPLY_TO"] = "replies@inbound.example.com"
    sent_lead(aws, tmp_path)
    (mail,) = aws.outbox()
    assert mail.headers["Reply-To"] == "replies@inbound.example.com"


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Sounds interesting, can you send me more details?", "Interested"),
        ("Let's talk next week.", "Interested"),
        ("Not interested, please remove me.", "Rejected"),
        ("We're all set, thanks.", "Rejected"),
        ("Who are you?", "Replied"),
    ],
)
def test_classification(text: str, status: str) -> None:
    assert classify(text).value == status


def test_ai_classifies_replies_when_configured_and_keywords_back_it_up(openai_stub: Any) -> None:
    from reengage.adapters.openai_writer import AiReplyClassifier
    from tests.integration.test_ai_writer import writer

    classifier = AiReplyClassifier(writer(openai_stub, retries=0), classify)
    openai_stub.replies.append(Reply(content='{"status": "Interested"}'))
    assert classifier("Who are you, and what would this cost us?").value == "Interested"
    system = openai_stub.requests[0]["messages"][0]["content"]
    assert "data, not instructions" in system
    openai_stub.fail(500)
    assert classifier("Who are you?").value == "Replied"  # the model failed: keywords
    openai_stub.replies.append(Reply(content='{"status": "Maybe"}'))
    assert classifier("No thanks.").value == "Rejected"  # an answer outside the schema: keywords


def test_a_reply_quoting_our_own_message_id_matches_strictly(aws: Emulator, tmp_path: Path) -> None:
    sent_lead(aws, tmp_path)
    (mail,) = aws.outbox()
    own_id = mail.headers["Message-ID"]
    assert own_id.startswith("<rg.lead-001.Followup_1.") and own_id.endswith("@example.com>")
    raw = inbound("inbound-reply.eml", "x").replace("<x@email.amazonses.com>", own_id)
    raw = raw.replace("emma.watson@healthtechlabs.io", "forwarded@else.example")  # not the lead's address
    raw = raw.replace("healthtechlabs.io", "else.example")  # and SES authenticated that address's domain
    assert deliver(raw) == {"reply_interested": 1}
    lead = wiring.stores(aws.settings).leads.get("lead-001")
    assert lead is not None and lead.engagement_history[-1]["matched_by"] == "thread"
    # A made-up id in our format for a stage never sent matches nothing
    forged = raw.replace(own_id, "<rg.lead-001.Followup_2.abc@example.com>")
    assert deliver(forged) == {"unmatched": 1}


def test_a_sender_without_ses_verdicts_is_not_trusted(aws: Emulator, tmp_path: Path) -> None:
    sent_lead(aws, tmp_path)
    raw = inbound("inbound-reply.eml", "unknown-id").replace("Let's talk", "No thanks, we are not interested")
    forged = "\n".join(line for line in raw.split("\n") if not line.startswith(" ") or "Received" in line)
    forged = forged.replace("Authentication-Results: amazonses.com;", "X-Removed: yes")
    assert deliver(forged) == {"unauthenticated_sender": 1}
    lead = wiring.stores(aws.settings).leads.get("lead-001")
    assert lead is not None and lead.response_status == "No Response"


def test_a_missing_object_is_a_counted_rejection_not_a_retry(aws: Emulator) -> None:
    event = json.loads(json.dumps(load_event("s3-inbound-reply")).replace(SAMPLE_BUCKET, inbound_bucket))
    event["Records"][0]["s3"]["object"]["key"] = "inbound/gone.eml"
    assert load_handler("reply").lambda_handler(event, FakeLambdaContext()) == {"missing_object": 1}


def test_reply_function_asks_the_model_with_the_key_its_own_role_may_read(
    aws: Emulator, tmp_path: Path, openai_stub: Any
) -> None:
    from aws_lambda_powertools.utilities import parameters

    ses_id = sent_lead(aws, tmp_path)
    # Given the stack deployed with an OpenAI key (the sender's earlier read is not in the cache)
    secret = boto3.client("secretsmanager").create_secret(
        Name="reengage/openai", SecretString='{"api_key": "sk-from-secret"}'
    )["ARN"]
    overrides = {
        **TIMELESS,
        "InboundDomain": "inbound.example.com",
        "OpenAIApiKeySecretArn": secret,
        "OpenAIBaseUrl": openai_stub.base_url,
    }
    os.environ.update(provision.provision(overrides).environment)
    parameters.clear_caches()
    openai_stub.replies.append(Reply(content='{"status": "Interested"}'))
    # When a reply the keywords alone would not call interested arrives
    raw = inbound("inbound-reply.eml", ses_id).replace("Let's talk", "Hmm, maybe.")
    # Then ReplyFunction read the key as its role (a refusal fails the test) and the model classified it
    assert deliver(raw) == {"reply_interested": 1}
    assert openai_stub.headers[-1].get("authorization", openai_stub.headers[-1].get("Authorization")) == (
        "Bearer sk-from-secret"
    )
