"""Hazards of a batch of sends and their SES events, on the emulator: an opt-out landing mid-batch,
a hard bounce that lost its tags."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reengage import wiring
from reengage.domain.leads import FollowUpPolicy, ResponseStatus
from reengage.domain.messages import TemplateWriter
from reengage.services.responses import record_response
from reengage_cli.emulator import iam
from tests.conftest import Emulator, FakeLambdaContext, load_event, load_handler
from tests.integration.test_pipeline import as_sqs_event, lead_row, receive_all, seed


def feedback(event: dict[str, Any]) -> dict[str, int]:
    return dict(load_handler("feedback").lambda_handler(event, FakeLambdaContext()))


def test_an_untagged_hard_bounce_finds_its_lead_by_the_bounced_address(aws: Emulator, tmp_path: Path) -> None:
    # A hard bounce comes before any Delivery, so SES's message id is not on the ledger yet
    seed(aws, tmp_path, [lead_row(1, email="emma.watson@healthtechlabs.io")])
    load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    load_handler("sender").lambda_handler(as_sqs_event(receive_all(aws.settings.queue_url)), FakeLambdaContext())
    bounce = load_event("ses-bounce")  # its bounced recipient is emma.watson@healthtechlabs.io
    message = json.loads(bounce["Records"][0]["Sns"]["Message"])
    message["mail"]["tags"] = {}  # no usable tag
    bounce["Records"][0]["Sns"]["Message"] = json.dumps(message)
    result = feedback(bounce)
    lead = wiring.stores(aws.settings).leads.get("lead-001")
    assert result == {"hard_bounce": 1} and lead is not None and lead.response_status == "Bounced"
    assert wiring.stores(aws.settings).suppression.is_suppressed("emma.watson@healthtechlabs.io")


def test_suppression_landing_mid_batch_stops_the_other_record(
    aws: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Person P has two records: lead-001 (not due) and lead-002 (due). lead-002 shares a batch with
    lead-003. While lead-003's message is being written, lead-001 unsubscribes (address suppressed).
    Invariant 5 / Compliance: the sender stops the other records of a suppressed address."""
    shared = "pat@example.com"
    seed(aws, tmp_path, [lead_row(1, days=1, email=shared), lead_row(2, email=shared), lead_row(3)])
    load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    messages = receive_all(aws.settings.queue_url)
    bodies = sorted(messages, key=lambda m: json.loads(m["Body"])["lead_id"], reverse=True)  # lead-003 first
    assert [json.loads(m["Body"])["lead_id"] for m in bodies] == ["lead-003", "lead-002"]
    original = TemplateWriter.write
    fired: list[Any] = []

    def write(self: Any, lead: Any, stage: Any, now: datetime) -> Any:
        if lead.id == "lead-003" and not fired:
            fired.append(1)
            # The unsubscribe of the person's other record lands now (before lead-002's lock)
            with iam.acting_as(None):  # the unsubscribe is another function's write, not the sender's
                record_response(
                    wiring.stores(aws.settings),
                    "lead-001",
                    ResponseStatus.UNSUBSCRIBED,
                    "unsubscribe-link",
                    datetime.now(UTC),
                    FollowUpPolicy(),
                )
        return original(self, lead, stage, now)

    monkeypatch.setattr(TemplateWriter, "write", write)
    load_handler("sender").lambda_handler(as_sqs_event(bodies), FakeLambdaContext())
    assert fired and wiring.stores(aws.settings).suppression.is_suppressed(shared)
    to_shared = [m for m in aws.outbox() if shared in str(m)]
    assert to_shared == [], "an email went to an address that was on the suppression list before its lock"


def test_oversized_lead_id_is_a_counted_rejection_not_a_retry(aws: Emulator) -> None:
    """A lead id over DynamoDB's 2,048-byte key limit can never succeed (README: poison -> counted rejection)."""
    event = load_event("sqs-follow-ups")
    record = copy.deepcopy(event["Records"][0])
    record["body"] = json.dumps({"lead_id": "é" * 1100, "stage": "Followup_1", "campaign_id": "c"})
    response = load_handler("sender").lambda_handler({"Records": [record]}, FakeLambdaContext())
    assert response == {"batchItemFailures": []}
