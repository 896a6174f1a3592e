"""The statistics counters (DynamoDB through botocore, kept in the send-ledger table under the key `#stats`).

One item holds the totals (one number attribute per counter, moved with atomic ADDs);
one item per UTC day holds that day's sends. Reading the statistics is one GetItem and
one Query, whatever the size of the leads table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from reengage.adapters.dynamo_errors import raise_if_transient
from reengage.domain.stats import RECENT_DAYS, Counts

STATS_KEY = "#stats"
TOTALS = "totals"
DAY_PREFIX = "day#"
_COUNTER_PREFIX = "c_"


class DynamoCounters:
    """Satisfies `reengage.ports.Counters`."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    def _add(self, sort_key: str, counts: Mapping[str, int], checkpoint: tuple[str, str] | None = None) -> None:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        adds = []
        for index, (name, value) in enumerate(sorted(counts.items())):
            names[f"#a{index}"] = _COUNTER_PREFIX + name
            values[f":a{index}"] = {"N": str(value)}
            adds.append(f"#a{index} :a{index}")
        expression = "ADD " + ", ".join(adds) if adds else ""
        if checkpoint is not None:
            names["#ck"] = "ck_" + checkpoint[0]
            values[":ck"] = {"S": checkpoint[1]}
            expression += " SET #ck = :ck"
        if not expression:
            return
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"lead_id": {"S": STATS_KEY}, "stage": {"S": sort_key}},
                UpdateExpression=expression.strip(),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            raise_if_transient(error)
            raise

    def apply(self, totals: Counts, days: Counts, checkpoint: tuple[str, str] | None = None) -> None:
        """Move the counters by a delta (atomic ADDs); optionally remember a stream position."""
        self._add(TOTALS, totals, checkpoint)
        for day, value in days.items():
            if value:
                self._add(DAY_PREFIX + day, {"sends": value})

    def _totals_item(self) -> dict[str, Any]:
        item = self.client.get_item(
            TableName=self.table_name,
            Key={"lead_id": {"S": STATS_KEY}, "stage": {"S": TOTALS}},
            ConsistentRead=True,
        ).get("Item", {})
        return dict(item)

    def checkpoint(self, shard_id: str) -> str | None:
        value = self._totals_item().get("ck_" + shard_id, {}).get("S")
        return str(value) if value else None

    def read(self, now: datetime, days_back: int = RECENT_DAYS) -> tuple[Counts, Counts]:
        """The totals, and the sends of the last `days_back` days."""
        totals = {
            name.removeprefix(_COUNTER_PREFIX): int(value["N"])
            for name, value in self._totals_item().items()
            if name.startswith(_COUNTER_PREFIX)
        }
        first = DAY_PREFIX + (now - timedelta(days=days_back)).date().isoformat()
        items = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="lead_id = :key AND stage >= :first",
            ExpressionAttributeValues={":key": {"S": STATS_KEY}, ":first": {"S": first}},
            ConsistentRead=True,
        )["Items"]
        days = {
            item["stage"]["S"].removeprefix(DAY_PREFIX): int(item.get(_COUNTER_PREFIX + "sends", {}).get("N", "0"))
            for item in items
            if item["stage"]["S"].startswith(DAY_PREFIX)
        }
        return totals, days

    def replace(self, totals: Counts, days: Counts) -> None:
        """Overwrite every counter (the rebuild). Stream checkpoints are kept."""
        kept = {name: value for name, value in self._totals_item().items() if name.startswith("ck_")}
        item: dict[str, Any] = {"lead_id": {"S": STATS_KEY}, "stage": {"S": TOTALS}, **kept}
        item.update({_COUNTER_PREFIX + name: {"N": str(value)} for name, value in totals.items()})
        self.client.put_item(TableName=self.table_name, Item=item)
        existing = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="lead_id = :key AND begins_with(stage, :day)",
            ExpressionAttributeValues={":key": {"S": STATS_KEY}, ":day": {"S": DAY_PREFIX}},
            ProjectionExpression="stage",
        )["Items"]
        for item in existing:
            if item["stage"]["S"].removeprefix(DAY_PREFIX) not in days:
                self.client.delete_item(
                    TableName=self.table_name, Key={"lead_id": {"S": STATS_KEY}, "stage": item["stage"]}
                )
        for day, value in days.items():
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    "lead_id": {"S": STATS_KEY},
                    "stage": {"S": DAY_PREFIX + day},
                    _COUNTER_PREFIX + "sends": {"N": str(value)},
                },
            )
