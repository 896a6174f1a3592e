"""Keeping the statistics counters up to date from the leads table's DynamoDB stream.

In AWS, CountersFunction receives the stream batches; locally, `reengage status` reads
the stream itself (`catch_up`) before showing the counters. Both apply the same deltas.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reengage.leads import Lead
from reengage.ports import InvalidLeadDataError
from reengage.stats import Counts, add, delta
from reengage.stats_store import DynamoStatsStore

logger = logging.getLogger(__name__)

ReadLead = Callable[[dict[str, Any]], Lead]


def _image(read_lead: ReadLead, image: Mapping[str, Any] | None, record_id: str) -> Lead | None:
    if not image:
        return None
    try:
        return read_lead(dict(image))
    except InvalidLeadDataError as error:
        # Counted as absent: a lead nobody can read is not a lead the statistics can describe.
        logger.warning("unreadable lead image in the stream", extra={"record": record_id, "error": str(error)})
        return None


def stream_delta(records: Iterable[Mapping[str, Any]], read_lead: ReadLead) -> tuple[Counts, Counts]:
    """The sum of the deltas of a batch of stream records (INSERT, MODIFY, REMOVE)."""
    totals: Counts = {}
    days: Counts = {}
    for record in records:
        change = record.get("dynamodb", {})
        record_id = str(record.get("eventID", ""))
        old = _image(read_lead, change.get("OldImage"), record_id)
        new = _image(read_lead, change.get("NewImage"), record_id)
        moved_totals, moved_days = delta(old, new)
        add(totals, moved_totals)
        add(days, moved_days)
    return totals, days


def catch_up(streams: Any, stream_arn: str, stats: DynamoStatsStore, read_lead: ReadLead) -> int:
    """Apply every stream record not applied yet (the local stand-in for CountersFunction).

    Each page of records is applied together with its shard position, in one update, so a
    page is never counted twice.
    """
    applied = 0
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"].get("Shards", [])
    for shard in shards:
        shard_id = shard["ShardId"]
        position = stats.checkpoint(shard_id)
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
            stats.apply(totals, days, checkpoint=(shard_id, records[-1]["dynamodb"]["SequenceNumber"]))
            applied += len(records)
            iterator = page.get("NextShardIterator")
    return applied
