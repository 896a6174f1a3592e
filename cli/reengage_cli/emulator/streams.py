"""The local stand-in for CountersFunction: `reengage status` reads the leads table's stream itself."""

from __future__ import annotations

from typing import Any

from reengage.ports import Counters
from reengage.services.counters import ReadLead, stream_delta


def catch_up(streams: Any, stream_arn: str, counters: Counters, read_lead: ReadLead) -> int:
    """Apply every stream record not applied yet.

    Each page of records is applied together with its shard position, in one update, so a
    page is never counted twice.
    """
    applied = 0
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"].get("Shards", [])
    for shard in shards:
        shard_id = shard["ShardId"]
        position = counters.checkpoint(shard_id)
        if position:
            iterator = streams.get_shard_iterator(
                StreamArn=stream_arn,
                ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=position,
            )["ShardIterator"]
        else:
            iterator = streams.get_shard_iterator(
                StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records = page.get("Records", [])
            if not records:
                break
            totals, days = stream_delta(records, read_lead)
            counters.apply(totals, days, checkpoint=(shard_id, records[-1]["dynamodb"]["SequenceNumber"]))
            applied += len(records)
            iterator = page.get("NextShardIterator")
    return applied
