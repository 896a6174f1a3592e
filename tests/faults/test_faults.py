"""Faults injected at every step of the real pipeline on the emulator.

For every scenario, once the faults clear: each due lead got exactly one email for its
stage, no ineligible lead got any, and no lead is left claimed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from reengage import wiring
from reengage.domain.leads import FollowUpPolicy
from reengage_cli.importer import import_file
from tests.conftest import Emulator
from tests.faults.harness import Crash, Faults, Pipeline, check_invariants, crash, ses_throttling
from tests.integration.test_pipeline import lead_row, write_leads

DUE = 9
INELIGIBLE: list[dict[str, Any]] = [
    {"last_contacted_days": 2},  # not due yet
    {"response_status": "Converted"},
    {"email_confidence_level": "Guess"},
    {"follow_up_stage": "Followup_2"},
]


def seed(aws: Emulator, tmp_path: Path, pipeline: Pipeline) -> tuple[set[str], set[str]]:
    rows = []
    for number in range(DUE + len(INELIGIBLE)):
        extra: dict[str, Any] = dict(INELIGIBLE[number - DUE]) if number >= DUE else {}
        rows.append(lead_row(number, days=int(extra.pop("last_contacted_days", 9)), **extra))
    path = write_leads(tmp_path, rows)
    report = import_file(wiring.stores(aws.settings), path, pipeline.now, FollowUpPolicy())
    assert report.rejected == []
    due = {row["email"] for row in rows[:DUE]}
    return due, {row["email"] for row in rows[DUE:]}


def reply_arrives(aws: Emulator, replied: list[str]) -> Callable[[str], None]:
    """The lead replies (a CRM records Interested) between the sender's read and its lock."""

    def record_reply(lead_id: str) -> None:
        boto3.client("dynamodb").update_item(
            TableName=aws.settings.leads_table_name,
            Key={"id": {"S": lead_id}},
            UpdateExpression="SET response_status = :interested",
            ExpressionAttributeValues={":interested": {"S": "Interested"}},
        )
        replied.append(f"person{int(lead_id.split('-')[1])}@example.com")

    return record_reply


def throttle_dynamodb(pipeline: Pipeline) -> None:
    """DynamoDB answers ProvisionedThroughputExceeded to the next send-lock transaction."""

    def hook(**_: Any) -> None:
        pipeline.faults.at("dynamodb.transact")

    pipeline.faults.once("dynamodb.transact", _throughput_exceeded)
    connection = __import__("pynamodb.connection", fromlist=["Connection"]).Connection()
    connection.client.meta.events.register("before-call.dynamodb.TransactWriteItems", hook)
    # A client of its own for the send lock's transactions (the models keep the shared one)
    pipeline.real_stores.send_lock.connection = connection  # type: ignore[attr-defined]


def _throughput_exceeded(*_: Any) -> None:
    from botocore.exceptions import ClientError

    raise ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "TransactWriteItems"
    )


def random_crashes(pipeline: Pipeline, _: Emulator) -> None:
    for point in ("scheduler.after_claim", "sender.before_lock", "sender.after_send", "sender.after_record"):
        pipeline.faults.sometimes(point, 0.15, crash)


SCENARIOS: dict[str, Callable[[Pipeline, Emulator], None]] = {
    "no faults": lambda p, a: None,
    "scheduler dies before its first claim": lambda p, a: p.faults.once("scheduler.before_claim", crash),
    "scheduler dies after claiming, before enqueueing": lambda p, a: p.faults.once("scheduler.after_claim", crash),
    "scheduler dies after 5 claims": lambda p, a: p.faults.after("scheduler.after_claim", 4, crash),
    "sender dies after SES accepted, before the record": lambda p, a: p.faults.once("sender.after_send", crash),
    "sender dies after the record, before deleting the message": lambda p, a: p.faults.once(
        "sender.after_record", crash
    ),
    # A batch's leads are read in one call before the first request: the fourth request's lock is mid-batch
    "sender dies mid-batch (deadline)": lambda p, a: p.faults.after("sender.before_lock", 3, crash),
    "SES throttles three times": lambda p, a: p.faults.once("ses.before_send", ses_throttling, times=3),
    "SES throttles every other call": lambda p, a: p.faults.sometimes("ses.before_send", 0.5, ses_throttling),
    "DynamoDB throttles a send-lock transaction": lambda p, a: throttle_dynamodb(p),
    "random crashes everywhere": random_crashes,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_invariants_hold_after_faults(aws: Emulator, tmp_path: Path, scenario: str) -> None:
    pipeline = Pipeline(aws.endpoint, aws.settings, Faults())
    due, ineligible = seed(aws, tmp_path, pipeline)
    SCENARIOS[scenario](pipeline, aws)
    pipeline.run_until_quiet()
    verdict = check_invariants(pipeline, due, ineligible)
    assert verdict.duplicates == 0, verdict
    assert verdict.sent == DUE, verdict  # every due lead got its one email
    assert verdict.lost == 0 and verdict.ineligible_emailed == 0 and verdict.left_claimed == 0, verdict
    if scenario != "no faults":
        assert sum(pipeline.faults.fired.values()) > 0, "the fault never fired: the scenario tested nothing"


def test_a_reply_between_read_and_lock_wins(aws: Emulator, tmp_path: Path) -> None:
    pipeline = Pipeline(aws.endpoint, aws.settings)
    due, ineligible = seed(aws, tmp_path, pipeline)
    replied: list[str] = []
    pipeline.faults.once("sender.before_lock", reply_arrives(aws, replied), times=2)
    pipeline.run_until_quiet()
    assert len(replied) == 2
    verdict = check_invariants(pipeline, due - set(replied), ineligible | set(replied))
    assert (verdict.sent, verdict.duplicates, verdict.ineligible_emailed, verdict.left_claimed) == (DUE - 2, 0, 0, 0)


def test_duplicate_delivery_of_every_batch(aws: Emulator, tmp_path: Path) -> None:
    pipeline = Pipeline(aws.endpoint, aws.settings)
    due, ineligible = seed(aws, tmp_path, pipeline)
    pipeline.run_until_quiet(duplicate_chance=1.0)
    verdict = check_invariants(pipeline, due, ineligible)
    assert (verdict.sent, verdict.duplicates, verdict.lost, verdict.left_claimed) == (DUE, 0, 0, 0), verdict
    assert any(outcome.reason.startswith("stage_already_sent") for outcome in pipeline.outcomes)


def test_two_schedulers_at_once_then_senders(aws: Emulator, tmp_path: Path) -> None:
    pipeline = Pipeline(aws.endpoint, aws.settings)
    due, ineligible = seed(aws, tmp_path, pipeline)
    summaries: list[Any] = []
    threads = [threading.Thread(target=lambda: summaries.append(pipeline.schedule())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(summary.marked for summary in summaries) == DUE
    pipeline.run_until_quiet()
    verdict = check_invariants(pipeline, due, ineligible)
    assert (verdict.sent, verdict.duplicates, verdict.left_claimed) == (DUE, 0, 0), verdict


def test_sender_dying_between_lock_and_send_never_sends_twice_and_is_shown(aws: Emulator, tmp_path: Path) -> None:
    # The one window no application can close alone: the lock is taken, the process dies
    # before SES is called. At most once wins: the stage is recorded as possibly sent.
    pipeline = Pipeline(aws.endpoint, aws.settings)
    due, ineligible = seed(aws, tmp_path, pipeline)
    pipeline.faults.once("sender.after_lock", crash)
    pipeline.run_until_quiet()
    verdict = check_invariants(pipeline, due, ineligible)
    assert (verdict.duplicates, verdict.lost, verdict.left_claimed, verdict.possibly_sent) == (0, 0, 0, 1), verdict
    assert verdict.sent == DUE - 1


def test_poison_messages_are_rejected_at_once_without_blocking_others(
    aws: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = Pipeline(aws.endpoint, aws.settings)
    due, ineligible = seed(aws, tmp_path, pipeline)
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=aws.settings.queue_url, MessageBody="{not json")
    sqs.send_message(QueueUrl=aws.settings.queue_url, MessageBody='{"lead_id": "ghost", "stage": "Followup_1"}')
    pipeline.run_until_quiet()
    verdict = check_invariants(pipeline, due, ineligible)
    assert (verdict.sent, verdict.duplicates, verdict.left_claimed) == (DUE, 0, 0), verdict
    dlq = sqs.get_queue_url(QueueName="reengage-local-DeadLetterQueue")["QueueUrl"]
    bodies = []
    while batch := sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [message["Body"] for message in batch]
    # Neither can ever succeed: each is a counted rejection (issue 11), not retried into the DLQ
    assert bodies == []
    rejected = [r for r in caplog.records if r.getMessage() == "input rejected"]
    assert len(rejected) == 2


def test_crash_is_not_catchable_by_the_code_under_test() -> None:
    assert not issubclass(Crash, Exception)
