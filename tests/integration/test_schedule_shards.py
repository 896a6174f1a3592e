"""The schedule index is sharded: `<state>#<shard>`, shard = crc32(lead id) % SCHEDULE_SHARDS."""

from __future__ import annotations

import binascii
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from reengage import wiring
from reengage.domain.clock import format_time
from reengage.domain.leads import ScheduleState
from reengage.services import scheduler
from reengage.services.scheduler import CampaignRequest, run_scheduler
from reengage.services.upkeep import migrate
from reengage_cli.commands.statistics import backlog
from tests.conftest import Emulator, FakeLambdaContext, load_event, load_handler
from tests.integration.test_pipeline import lead_row, receive_all, seed


def raw_items(aws: Emulator) -> list[dict[str, Any]]:
    return list(boto3.client("dynamodb").scan(TableName=aws.settings.leads_table_name)["Items"])


def test_a_runs_claims_are_spread_over_the_shards(aws: Emulator, tmp_path: Path) -> None:
    # Given 64 due leads (16 shards, the default)
    assert aws.settings.schedule_shards == 16
    seed(aws, tmp_path, [lead_row(n, days=8 + n / 100) for n in range(1, 65)])
    due = raw_items(aws)
    # Then each is filed under its own shard, computed from its id alone
    for item in due:
        shard = binascii.crc32(item["id"]["S"].encode()) % 16
        assert item["schedule_part"]["S"] == f"due#{shard}"
    # And the index returns them across all shards, oldest due first
    stores = wiring.stores(aws.settings)
    entries = list(stores.schedule.entries(ScheduleState.DUE, format_time(datetime.now(UTC))))
    assert [entry.lead_id for entry in entries] == [f"lead-{n:03d}" for n in range(64, 0, -1)]
    # When one run claims them all (one claim time: before sharding, one key held all 64)
    result = load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    assert result["marked"] == 64
    parts = Counter(item["schedule_part"]["S"] for item in raw_items(aws))
    # Then no key holds more than a small share of them
    assert all(part.startswith("claimed#") for part in parts)
    assert len(parts) >= 12 and max(parts.values()) <= 64 * 0.2


def test_migrate_files_items_written_before_sharding(aws: Emulator, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    contacted = format_time(now - timedelta(days=9))
    dynamodb = boto3.client("dynamodb")
    base: dict[str, Any] = {
        "engagement_status": {"S": "Sent"},
        "email_confidence_level": {"S": "Real"},
        "response_status": {"S": "No Response"},
        "last_contacted": {"S": contacted},
        "version": {"N": "3"},
    }
    # Given a due lead and a claimed lead as reengage wrote them before the index was sharded
    old_due = {**base, "id": {"S": "old-due"}, "email": {"S": "a@example.com"}}
    old_due.update(schedule_state={"S": "due"}, schedule_at={"S": contacted})
    old_claim = {**base, "id": {"S": "old-claim"}, "email": {"S": "b@example.com"}}
    old_claim.update(
        schedule_state={"S": "claimed"},
        schedule_at={"S": format_time(now - timedelta(days=2))},
        claim_stage={"S": "Followup_1"},
        eligible_for_reengagement={"BOOL": True},
    )
    for item in (old_due, old_claim):
        dynamodb.put_item(TableName=aws.settings.leads_table_name, Item=item)
    scheduler = load_handler("scheduler")
    # Then the scheduler cannot see them (they are not in the sharded index)
    assert scheduler.lambda_handler(load_event("scheduled"), FakeLambdaContext())["eligible"] == 0
    # When migrate runs (twice: it is idempotent)
    stores = wiring.stores(aws.settings)
    assert migrate(stores, aws.settings.policy, now).updated == 2
    assert migrate(stores, aws.settings.policy, now).updated == 0
    # Then both are filed under their shard, the claim still a claim
    by_id = {item["id"]["S"]: item for item in raw_items(aws)}
    for lead_id, state in (("old-due", "due"), ("old-claim", "claimed")):
        shard = binascii.crc32(lead_id.encode()) % 16
        assert by_id[lead_id]["schedule_part"]["S"] == f"{state}#{shard}"
        assert by_id[lead_id]["schedule_state"]["S"] == state
    # And the next run takes both: the due lead, and the claim abandoned for longer than the timeout
    assert scheduler.lambda_handler(load_event("scheduled"), FakeLambdaContext())["marked"] == 2


def test_a_run_cut_short_leaves_a_visible_backlog_that_the_next_run_takes(
    aws: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 25 due leads and a run whose time runs out after one round of 10 claims
    monkeypatch.setattr(scheduler, "CLAIM_CHUNK", 10)
    seed(aws, tmp_path, [lead_row(n) for n in range(1, 26)])
    stores, queue = wiring.stores(aws.settings), wiring.follow_up_queue(aws.settings)
    clock = iter([300_000] + [10_000] * 100)
    now = datetime.now(UTC)
    first = run_scheduler(stores, queue, CampaignRequest(7), aws.settings, now, lambda: next(clock))
    # Then the 15 it did not reach are reported (LeadsLeftForNextRun) and `reengage status` shows them
    assert (first.marked, first.left_for_next_run, first.stopped_at_deadline) == (10, 15, True)
    assert backlog(aws.settings) == {"due_now": 15, "claimed": 10}
    # When the schedule's next run comes
    second = run_scheduler(stores, queue, CampaignRequest(7), aws.settings, now)
    # Then it takes the rest, and nothing is left
    assert (second.marked, second.left_for_next_run) == (15, 0)
    assert backlog(aws.settings) == {"due_now": 0, "claimed": 25}
    assert len(receive_all(aws.settings.queue_url)) == 25


def test_the_daily_cap_is_counted_over_shards_and_never_exceeded(aws: Emulator) -> None:
    import threading

    quota = wiring.stores(aws.settings).quota
    day = "2026-12-02"
    # When 30 senders at once each try to count a send against a cap of 20
    results: list[bool] = []
    barrier = threading.Barrier(30)

    def reserve() -> None:
        barrier.wait()
        results.append(quota.reserve(day, 20))

    threads = [threading.Thread(target=reserve) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly 20 are counted, and the count is read back whole
    assert results.count(True) == 20 and quota.used(day) == 20
    assert not quota.reserve(day, 20)
    # And no single counter item took more than its share (before: one item took all 20 writes)
    counters = [
        item
        for item in boto3.client("dynamodb").scan(TableName=aws.settings.send_ledger_table_name)["Items"]
        if item["lead_id"]["S"].startswith("#daily-sends")
    ]
    assert len(counters) == 16 and max(int(item["sent_count"]["N"]) for item in counters) <= 2


def test_batch_reservations_and_their_give_backs_never_exceed_the_cap(aws: Emulator) -> None:
    import threading

    quota = wiring.stores(aws.settings).quota
    day, cap = "2026-12-02", 100
    # 16 senders at once, each reserving a batch of 10 and then sending only some of it
    sent: list[int] = []
    barrier = threading.Barrier(16)

    def batch(number: int) -> None:
        barrier.wait()
        reservation = quota.reserve_up_to(day, cap, 10)
        if reservation is None:
            return
        used = min(reservation.count, 3 + number % 8)
        quota.release(reservation, reservation.count - used)
        sent.append(used)

    threads = [threading.Thread(target=batch, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then the counters hold exactly what was sent, never more than the cap
    assert quota.used(day) == sum(sent) <= cap
    # And a batch larger than any shard's share (100 / 16 = 6 or 7) is counted one send at a time
    big = quota.reserve_up_to(day, cap, 10)
    assert big is not None and big.count == 1
    small = quota.reserve_up_to("2026-12-03", 1000, 10)
    assert small is not None and small.count == 10 and quota.used("2026-12-03") == 10
