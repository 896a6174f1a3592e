"""Sends in doubt (SES accepted, the sender's answer lost) and their settlement, on the emulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reengage import wiring
from reengage.domain.leads import FollowUpStage
from reengage.ports import SendInDoubtError
from reengage.services.scheduler import settle_abandoned_sends
from reengage_cli.emulator import iam
from tests.conftest import Emulator, FakeLambdaContext, load_event, load_handler
from tests.integration.test_pipeline import as_sqs_event, lead_row, receive_all, seed


class AcceptedAnswerLost:
    """SES takes the email; the answer never reaches the sender (read timeout)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def send(self, email: Any) -> str:
        self.real.send(email)
        raise SendInDoubtError("SES did not answer: ReadTimeoutError")


def in_doubt_send(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(1)])
    load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    handler = load_handler("sender")
    sender = handler.build_sender(aws.settings)
    sender.mailer = AcceptedAnswerLost(sender.mailer)
    with iam.acting_as(iam.registered("SenderFunction")):
        handler.handle_batch(as_sqs_event(receive_all(aws.settings.queue_url)), FakeLambdaContext(), sender)
    assert len(aws.outbox()) == 1


def ses_event(kind: str) -> dict[str, Any]:
    event = load_event("ses-delivery")
    message = json.loads(event["Records"][0]["Sns"]["Message"])
    message["eventType"] = kind
    if kind == "Reject":
        message.pop("delivery", None)
        message["reject"] = {"reason": "Bad content"}
    event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    return event


def settle(aws: Emulator) -> list[str]:
    stores = wiring.stores(aws.settings)
    later = datetime.now(UTC) + timedelta(minutes=20)  # the lock is older than SEND_LOCK_TIMEOUT
    with iam.acting_as(iam.registered("SchedulerFunction")):
        return settle_abandoned_sends(stores, aws.settings.policy, later)


def test_a_delivery_landing_while_the_scheduler_settles_is_not_lost(aws: Emulator, tmp_path: Path) -> None:
    in_doubt_send(aws, tmp_path)
    stores = wiring.stores(aws.settings)
    ledger = stores.ledger
    original = type(ledger).record
    fired: list[Any] = []

    def record(self: Any, lead_id: str, stage: FollowUpStage) -> Any:
        read = original(self, lead_id, stage)
        if not fired:  # the Delivery event lands just after the scheduler read the ledger
            fired.append(load_handler("feedback").lambda_handler(ses_event("Delivery"), FakeLambdaContext()))
        return read

    type(ledger).record = record  # type: ignore[method-assign]
    try:
        first = settle(aws)  # refused: SES confirmed the send after this run read the ledger
    finally:
        type(ledger).record = original  # type: ignore[method-assign]
    settled = settle(aws)  # the next run settles it as sent
    assert first == [] and settled == ["lead-001"]
    lead = stores.leads.get("lead-001")
    final = stores.ledger.record("lead-001", FollowUpStage.FOLLOWUP_1)
    # SES confirmed the send: it must not stay 'possibly sent' for review
    assert final is not None and final.state == "sent", final
    assert lead is not None and lead.engagement_history[-1]["outcome"] != "possibly_sent"
