"""The whole pipeline over HTTP against the moto server:
scheduler handler -> SQS -> sender handler -> SES -> DynamoDB."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import boto3

from reengage import wiring
from reengage.domain.leads import FollowUpPolicy, ScheduleState
from reengage_cli.importer import import_file
from tests.conftest import NOW, Emulator, FakeLambdaContext, ago, load_event, load_handler


def write_leads(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "leads.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def lead_row(number: int, days: float = 8, **changes: Any) -> dict[str, Any]:
    return {
        "id": f"lead-{number:03d}",
        "name": f"Person {number}",
        "email": f"person{number}@example.com",
        "company": f"Company {number}",
        "engagement_status": "Sent",
        "email_confidence_level": "Real",
        "last_contacted": ago(days=days, now=NOW.now(NOW.tzinfo)),
        **changes,
    }


def seed(aws: Emulator, tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    report = import_file(
        wiring.stores(aws.settings), write_leads(tmp_path, rows), NOW.now(NOW.tzinfo), FollowUpPolicy()
    )
    assert report.rejected == []


def receive_all(queue_url: str) -> list[dict[str, Any]]:
    sqs: Any = boto3.client("sqs")
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60, MessageSystemAttributeNames=["All"]
    ).get("Messages", []):
        messages.extend(batch)
    return messages


def as_sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    template = load_event("sqs-follow-ups")["Records"][0]
    return {
        "Records": [
            {
                **template,
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "md5OfBody": message["MD5OfBody"],
                "attributes": message["Attributes"],
            }
            for message in messages
        ]
    }


def test_due_leads_get_one_follow_up_each_end_to_end(aws: Emulator, tmp_path: Path) -> None:
    # Given due, not-yet-due and finished leads in DynamoDB
    seed(
        aws,
        tmp_path,
        [
            lead_row(1),
            lead_row(2, follow_up_stage="Followup_1"),
            lead_row(3, days=2),
            lead_row(4, response_status="Converted"),
            lead_row(5, email_confidence_level="Guess"),
        ],
    )
    scheduler, sender = load_handler("scheduler"), load_handler("sender")

    # When the daily schedule fires and the queue feeds the sender
    result = scheduler.lambda_handler(load_event("scheduled"), FakeLambdaContext())
    assert result["ok"] and (result["eligible"], result["marked"]) == (2, 2)
    messages = receive_all(aws.settings.queue_url)
    response = sender.lambda_handler(as_sqs_event(messages), FakeLambdaContext())

    # Then exactly the due leads got their stage's email through SES
    assert response == {"batchItemFailures": []}
    sent = aws.outbox()
    assert sorted(mail.to for mail in sent) == ["Person 1 <person1@example.com>", "Person 2 <person2@example.com>"]
    by_to = {mail.to: mail for mail in sent}
    assert "final" in by_to["Person 2 <person2@example.com>"].text.lower()
    assert by_to["Person 1 <person1@example.com>"].headers["From"] == "reengage <followups@example.com>"
    assert by_to["Person 1 <person1@example.com>"].html.startswith("<html>")

    # And stage, status and history are recorded on the leads
    leads = wiring.stores(aws.settings).leads
    first, second = leads.get("lead-001"), leads.get("lead-002")
    assert first is not None and second is not None
    assert (first.follow_up_stage, first.schedule_state, first.eligible_for_reengagement) == (
        "Followup_1",
        ScheduleState.DUE,
        False,
    )
    assert (second.follow_up_stage, second.schedule_state) == ("Followup_2", None)
    assert first.engagement_history[-1]["outcome"] == "sent" and first.engagement_history[-1]["message_id"]
    assert first.engagement_history[-1]["generator"] == "template"


def test_duplicate_delivery_and_a_second_run_send_nothing_more(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(n) for n in range(1, 13)])
    scheduler, sender = load_handler("scheduler"), load_handler("sender")
    scheduler.lambda_handler(load_event("scheduled"), FakeLambdaContext())
    messages = receive_all(aws.settings.queue_url)
    assert len(messages) == 12
    event = as_sqs_event(messages[:10])
    # SQS delivers the same batch twice (at-least-once), and two senders handle it at once
    threads = [threading.Thread(target=sender.lambda_handler, args=(event, FakeLambdaContext())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sender.lambda_handler(event, FakeLambdaContext())
    sender.lambda_handler(as_sqs_event(messages[10:]), FakeLambdaContext())
    again = scheduler.lambda_handler(load_event("scheduled"), FakeLambdaContext())

    recipients = [mail.to for mail in aws.outbox()]
    assert len(recipients) == 12 and len(set(recipients)) == 12
    assert again["marked"] == 0


def test_two_schedulers_at_once_claim_each_lead_once(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(n) for n in range(1, 41)])
    handlers = [load_handler("scheduler") for _ in range(2)]
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def run(handler: Any) -> None:
        barrier.wait()
        results.append(handler.lambda_handler(load_event("scheduled"), FakeLambdaContext()))

    threads = [threading.Thread(target=run, args=(handler,)) for handler in handlers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result["marked"] for result in results) == 40
    messages = receive_all(aws.settings.queue_url)
    assert sorted(json.loads(m["Body"])["lead_id"] for m in messages) == [f"lead-{n:03d}" for n in range(1, 41)]


def test_dry_run_changes_nothing(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(n) for n in range(1, 6)])
    dynamodb = boto3.client("dynamodb")
    before = dynamodb.scan(TableName=aws.settings.leads_table_name)["Items"]
    result = load_handler("scheduler").lambda_handler(load_event("scheduled-dry-run"), FakeLambdaContext())
    assert result["dry_run"] and result["eligible"] == 5 and result["marked"] == 0
    assert dynamodb.scan(TableName=aws.settings.leads_table_name)["Items"] == before
    assert receive_all(aws.settings.queue_url) == []
    assert aws.outbox() == []


def test_limit_leaves_the_rest_for_the_next_run(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(n, days=8 + n) for n in range(1, 8)])
    scheduler = load_handler("scheduler")
    first = scheduler.lambda_handler({"days_since_contact": 7, "limit": 3}, FakeLambdaContext())
    second = scheduler.lambda_handler({"days_since_contact": 7, "limit": 3}, FakeLambdaContext())
    third = scheduler.lambda_handler({"days_since_contact": 7, "limit": 3}, FakeLambdaContext())
    assert [first["marked"], second["marked"], third["marked"]] == [3, 3, 1]
    ids = [json.loads(m["Body"])["lead_id"] for m in receive_all(aws.settings.queue_url)]
    assert sorted(ids) == [f"lead-{n:03d}" for n in range(1, 8)]


def test_selection_queries_the_sparse_index_and_never_scans(aws: Emulator, tmp_path: Path) -> None:
    # Given 60 leads of which 6 are due
    rows = [lead_row(n, days=2) for n in range(1, 55)] + [lead_row(n) for n in range(55, 61)]
    seed(aws, tmp_path, rows)
    scheduler = load_handler("scheduler")
    result = scheduler.lambda_handler(load_event("scheduled"), FakeLambdaContext())
    assert result["marked"] == 6
    # Only the due rows were read: the range condition stops at the cut-off.
    _, stores, _ = scheduler._deployment()
    assert stores.schedule.query_stats.items_examined == 6


def test_invalid_scheduled_event_is_reported_not_raised(aws: Emulator) -> None:
    result = load_handler("scheduler").lambda_handler({"days_since_contact": "soon"}, FakeLambdaContext())
    assert result == {"ok": False, "error": "days_since_contact must be a whole number 0-3650, got 'soon'"}


def test_a_lead_converted_after_its_claim_is_skipped(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(1), lead_row(2)])
    load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    boto3.client("dynamodb").update_item(
        TableName=aws.settings.leads_table_name,
        Key={"id": {"S": "lead-002"}},
        UpdateExpression="SET response_status = :converted",
        ExpressionAttributeValues={":converted": {"S": "Converted"}},
    )
    load_handler("sender").lambda_handler(as_sqs_event(receive_all(aws.settings.queue_url)), FakeLambdaContext())
    assert [mail.to for mail in aws.outbox()] == ["Person 1 <person1@example.com>"]
    stored = wiring.stores(aws.settings).leads.get("lead-002")
    assert stored is not None and stored.schedule_state is None and not stored.eligible_for_reengagement
