"""The send lock and its ledger record are one DynamoDB transaction: all or nothing, on the emulator too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reengage import wiring
from reengage.domain.clock import format_time, utc_now
from reengage.domain.leads import FollowUpStage, ScheduleState
from reengage.ports import LockResult
from reengage.services.scheduler import CampaignRequest, run_scheduler
from tests.conftest import Emulator
from tests.integration.test_pipeline import lead_row, seed


def test_a_cancelled_lock_leaves_the_lead_and_the_stream_as_they_were(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(1)])
    stores = wiring.stores(aws.settings)
    run_scheduler(stores, wiring.follow_up_queue(aws.settings), CampaignRequest(7), aws.settings, utc_now())
    claimed = stores.leads.get("lead-001")
    assert claimed is not None and claimed.schedule_state == ScheduleState.CLAIMED
    now = format_time(utc_now())
    assert stores.send_lock.lock(claimed, FollowUpStage.FOLLOWUP_1, now, "c") is LockResult.LOCKED
    stores.send_lock.unlock(claimed, FollowUpStage.FOLLOWUP_1)
    assert stores.ledger.record("lead-001", FollowUpStage.FOLLOWUP_1) is None
    # The lock and the unlock each moved the lead on: a lock from the old read is refused
    assert stores.send_lock.lock(claimed, FollowUpStage.FOLLOWUP_1, now, "c") is LockResult.LEAD_CHANGED
    # Given a ledger record that already exists (another system reset the lead's stage, say)
    claimed = stores.leads.get("lead-001")
    assert claimed is not None
    assert stores.send_lock.lock(claimed, FollowUpStage.FOLLOWUP_1, now, "c") is LockResult.LOCKED
    settling = stores.leads.get("lead-001")
    assert settling is not None
    stores.send_lock.settle_in_doubt(
        settling, FollowUpStage.FOLLOWUP_1, now, {"outcome": "possibly_sent"}, now, "possibly_sent"
    )
    import boto3

    boto3.client("dynamodb").update_item(
        TableName=aws.settings.leads_table_name,
        Key={"id": {"S": "lead-001"}},
        UpdateExpression="SET schedule_state = :c, claim_stage = :s REMOVE follow_up_stage",
        ExpressionAttributeValues={":c": {"S": "claimed"}, ":s": {"S": "Followup_1"}},
    )
    before = stores.leads.get("lead-001")
    assert before is not None
    # When the lock transaction is cancelled by the ledger's condition
    result = stores.send_lock.lock(before, FollowUpStage.FOLLOWUP_1, format_time(utc_now()), "c2")
    # Then nothing of it was applied: the lead is still claimed, not sending
    assert result is LockResult.ALREADY_RECORDED
    after = stores.leads.get("lead-001")
    assert after is not None and (after.schedule_state, after.schedule_at) == (
        before.schedule_state,
        before.schedule_at,
    )
    record = stores.ledger.record("lead-001", FollowUpStage.FOLLOWUP_1)
    assert record is not None and record.state == "possibly_sent"


def test_the_emulator_checks_an_items_size_after_an_update_as_dynamodb_does(aws: Emulator) -> None:
    import boto3
    import pytest
    from botocore.exceptions import ClientError

    dynamodb = boto3.client("dynamodb")
    table = aws.settings.leads_table_name
    notes = [{"M": {"note": {"S": "y" * 3900}}} for _ in range(98)]  # about 383 KB
    dynamodb.put_item(TableName=table, Item={"id": {"S": "big"}, "engagement_history": {"L": notes}})
    # Shrinking an item near the limit is allowed (moto alone refuses it)
    dynamodb.update_item(
        TableName=table,
        Key={"id": {"S": "big"}},
        UpdateExpression="SET engagement_history = :h",
        ExpressionAttributeValues={":h": {"L": notes[:50]}},
    )
    # Growing it past the limit is still refused
    with pytest.raises(ClientError, match="maximum allowed size"):
        dynamodb.update_item(
            TableName=table,
            Key={"id": {"S": "big"}},
            UpdateExpression="SET extra = :x",
            ExpressionAttributeValues={":x": {"S": "z" * 300_000}},
        )


def counting(monkeypatch: pytest.MonkeyPatch, owner: type, method: str) -> list[int]:
    """Count the calls of `owner.method` (the count is the list's one element)."""
    calls = [0]
    original = getattr(owner, method)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, method, counted)
    return calls


def test_the_emulator_measures_an_item_written_once_not_once_per_attribute(
    aws: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from botocore.exceptions import ClientError
    from moto.dynamodb.models.dynamo_type import DynamoType

    measured = counting(monkeypatch, DynamoType, "size")
    dynamodb = boto3.client("dynamodb")
    table = aws.settings.leads_table_name
    # Given an item of 60 attributes
    item = {"id": {"S": "wide"}, **{f"a{n}": {"S": "x" * 10} for n in range(59)}}
    # When it is put, and put again in a transaction
    dynamodb.put_item(TableName=table, Item=item)
    put_once = measured[0]
    dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": {**item, "id": {"S": "w2"}}}}])
    # Then each write measured each attribute about once (moto alone: 60 * 59 / 2 = 1,770 times per item)
    assert put_once < 3 * 60 and measured[0] - put_once < 3 * 60, (put_once, measured[0])
    # And an item over the limit is still refused whole
    with pytest.raises(ClientError, match="maximum allowed size"):
        dynamodb.put_item(
            TableName=table, Item={"id": {"S": "huge"}, "a": {"S": "y" * 300_000}, "b": {"S": "z" * 150_000}}
        )


def test_the_emulator_parses_a_condition_once_not_once_per_write(
    aws: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from botocore.exceptions import ClientError
    from moto.dynamodb.comparisons import ConditionExpressionParser

    parses = counting(monkeypatch, ConditionExpressionParser, "parse")
    dynamodb: Any = boto3.client("dynamodb")
    table = aws.settings.leads_table_name
    guarded = {
        "ConditionExpression": "attribute_not_exists(#k) OR #v = :v",
        "ExpressionAttributeNames": {"#k": "id", "#v": "version"},
    }
    # When 20 new items are written with one condition, in a transaction and then one by one
    items = [{"id": {"S": f"c{n}"}, "version": {"N": "1"}} for n in range(20)]
    values = {"ExpressionAttributeValues": {":v": {"N": "7"}}}
    dynamodb.transact_write_items(
        TransactItems=[{"Put": {"TableName": table, "Item": item, **guarded, **values}} for item in items[:10]]
    )
    for item in items[10:]:
        dynamodb.put_item(TableName=table, Item=item, **guarded, **values)
    # Then the condition was parsed once (moto alone: twice per transaction item, once per put)
    assert parses[0] == 1
    # And it is still evaluated against each item: a write it does not allow is refused
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        dynamodb.put_item(TableName=table, Item=items[0], **guarded, **values)
    dynamodb.put_item(TableName=table, Item=items[0], **guarded, ExpressionAttributeValues={":v": {"N": "1"}})
