"""One SQS batch through SenderFunction on the emulator, its AWS calls counted from outside.

The sender reads a batch's leads and their suppression entries with one BatchGetItem each
and counts the batch against the daily cap once (giving back what it did not send), instead
of two reads and one counter write per email. Calls are counted by botocore hooks on every
client the handler builds (benchmarks/meter.py), not by the code under test.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from benchmarks.meter import Meter
from reengage import wiring
from reengage.domain.leads import ScheduleState
from tests.conftest import Emulator, FakeLambdaContext, load_event, load_handler
from tests.integration.test_pipeline import as_sqs_event, lead_row, receive_all, seed


def claimed_batch(aws: Emulator, tmp_path: Path, count: int) -> dict[str, Any]:
    seed(aws, tmp_path, [lead_row(n) for n in range(1, count + 1)])
    load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    messages = receive_all(aws.settings.queue_url)
    assert len(messages) == count
    return as_sqs_event(messages)


def send_counted(event: dict[str, Any]) -> tuple[dict[str, Any], Counter[str]]:
    meter = Meter()
    with meter.installed():
        sender = load_handler("sender")  # its clients are built inside the meter
        response = sender.lambda_handler(event, FakeLambdaContext())
    return response, meter.tally.calls


def counted_today(aws: Emulator) -> int:
    return wiring.stores(aws.settings).quota.used(datetime.now(UTC).date().isoformat())


def test_a_batch_reads_its_leads_and_counts_its_sends_once(aws: Emulator, tmp_path: Path) -> None:
    event = claimed_batch(aws, tmp_path, 10)
    response, calls = send_counted(event)
    assert response == {"batchItemFailures": []}
    assert calls["sesv2.SendEmail"] == 10 and calls["dynamodb.TransactWriteItems"] == 10
    # No read per email: the leads, their suppression entries and the day's count, one call each
    assert calls["dynamodb.GetItem"] == 0
    assert calls["dynamodb.BatchGetItem"] == 3
    # Per email one write recording the send; the daily cap counted once for the whole batch
    assert calls["dynamodb.UpdateItem"] == 10 + 1
    assert counted_today(aws) == 10


def test_what_a_batch_did_not_send_is_given_back_to_the_cap(aws: Emulator, tmp_path: Path) -> None:
    event = claimed_batch(aws, tmp_path, 6)
    # Two leads answered after they were claimed; one lead's address was suppressed meanwhile
    dynamodb: Any = boto3.client("dynamodb")
    for lead_id in ("lead-002", "lead-005"):
        dynamodb.update_item(
            TableName=aws.settings.leads_table_name,
            Key={"id": {"S": lead_id}},
            UpdateExpression="SET response_status = :r",
            ExpressionAttributeValues={":r": {"S": "Interested"}},
        )
    wiring.stores(aws.settings).suppression.suppress("person3@example.com", "complaint", "2026-11-24T09:00:00Z")
    response, calls = send_counted(event)
    assert response == {"batchItemFailures": []}
    assert calls["sesv2.SendEmail"] == 3
    # The cap counts only what went out: the batch's reservation of 6 gave 3 back
    assert counted_today(aws) == 3
    stores = wiring.stores(aws.settings)
    suppressed = stores.leads.get("lead-003")
    assert suppressed is not None and suppressed.schedule_state is None and suppressed.follow_up_stage is None
    answered = stores.leads.get("lead-002")
    assert (
        answered is not None and answered.follow_up_stage is None and answered.schedule_state != ScheduleState.SENDING
    )


def test_a_lead_changed_after_the_batch_read_is_read_again_not_overwritten(aws: Emulator, tmp_path: Path) -> None:
    event = claimed_batch(aws, tmp_path, 2)
    sender = load_handler("sender")
    deployment = sender._deployment()[0]
    original_send = deployment.send
    dynamodb: Any = boto3.client("dynamodb")

    def reply_lands_first(request: Any) -> Any:
        if request.lead_id == "lead-002":  # after the batch was read, before its turn
            dynamodb.update_item(
                TableName=aws.settings.leads_table_name,
                Key={"id": {"S": "lead-002"}},
                UpdateExpression="SET response_status = :r ADD version :one",
                ExpressionAttributeValues={":r": {"S": "Rejected"}, ":one": {"N": "1"}},
            )
        return original_send(request)

    deployment.send = reply_lands_first
    response = sender.lambda_handler(event, FakeLambdaContext())
    assert response == {"batchItemFailures": []}
    lead = wiring.stores(aws.settings).leads.get("lead-002")
    assert lead is not None and lead.response_status == "Rejected" and lead.follow_up_stage is None
    assert counted_today(aws) == 1


def test_one_dynamodb_client_serves_every_table_and_the_transactions(aws: Emulator, tmp_path: Path) -> None:
    import botocore.session

    event = claimed_batch(aws, tmp_path, 3)
    built: Counter[str] = Counter()
    original = botocore.session.Session.create_client

    def counting(session: Any, service: str, *args: Any, **kwargs: Any) -> Any:
        built[service] += 1
        return original(session, service, *args, **kwargs)

    botocore.session.Session.create_client = counting  # type: ignore[assignment,method-assign]
    try:
        response = load_handler("sender").lambda_handler(event, FakeLambdaContext())
    finally:
        botocore.session.Session.create_client = original  # type: ignore[method-assign]
    assert response == {"batchItemFailures": []}
    # Leads, ledger, counters, suppression and the send lock: one client (pynamodb alone built four)
    assert built["dynamodb"] == 1
