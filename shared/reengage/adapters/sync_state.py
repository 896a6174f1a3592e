"""What the CRM sync remembers (DynamoDB through botocore, in the send-ledger table).

Per synced table (`name`, e.g. `airtable:appXXX/tblYYY`): the cursor of the last successful
pull (`#sync#<name>` / `cursor`), and which record is which lead, both ways
(`#sync-link#<name>` / `record#<record id>` and `lead#<lead id>`), so a record whose email or
lead id column changes stays the same lead, and a lead's change finds its record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from reengage.adapters.dynamo_errors import raise_if_transient

_STATE_PREFIX = "#sync#"
_LINK_PREFIX = "#sync-link#"
_BATCH_WRITE = 25
_BATCH_GET = 100


class DynamoSyncState:
    def __init__(self, client: Any, table_name: str, name: str) -> None:
        self.client = client
        self.table_name = table_name
        self.name = name

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, operation)(TableName=self.table_name, **kwargs)
        except ClientError as error:
            raise_if_transient(error)
            raise

    def cursor(self) -> str | None:
        key = {"lead_id": {"S": _STATE_PREFIX + self.name}, "stage": {"S": "cursor"}}
        item = self._call("get_item", Key=key, ConsistentRead=True).get("Item")
        return item["cursor"]["S"] if item else None

    def save_cursor(self, cursor: str, at: str) -> None:
        item = {
            "lead_id": {"S": _STATE_PREFIX + self.name},
            "stage": {"S": "cursor"},
            "cursor": {"S": cursor},
            "synced_at": {"S": at},
        }
        self._call("put_item", Item=item)

    def links(self) -> dict[str, str]:
        """record id -> lead id, for every record synced so far."""
        found: dict[str, str] = {}
        request: dict[str, Any] = {
            "KeyConditionExpression": "lead_id = :k AND begins_with(stage, :p)",
            "ExpressionAttributeValues": {":k": {"S": _LINK_PREFIX + self.name}, ":p": {"S": "record#"}},
        }
        while True:
            page = self._call("query", **request)
            for item in page.get("Items", []):
                found[item["stage"]["S"][len("record#") :]] = item["other"]["S"]
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def records_of(self, lead_ids: Iterable[str]) -> dict[str, str]:
        """lead id -> record id, for the leads that have a record."""
        wanted = sorted(set(lead_ids))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), _BATCH_GET):
            keys = [
                {"lead_id": {"S": _LINK_PREFIX + self.name}, "stage": {"S": f"lead#{lead_id}"}}
                for lead_id in wanted[start : start + _BATCH_GET]
            ]
            request: dict[str, Any] = {self.table_name: {"Keys": keys}}
            while request:
                try:
                    answer = self.client.batch_get_item(RequestItems=request)
                except ClientError as error:
                    raise_if_transient(error)
                    raise
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    found[item["stage"]["S"][len("lead#") :]] = item["other"]["S"]
                request = answer.get("UnprocessedKeys") or {}
        return found

    def link(self, pairs: Mapping[str, str]) -> None:
        """Remember record id -> lead id (and back) for these pairs."""
        items = []
        for record_id, lead_id in pairs.items():
            partition = {"S": _LINK_PREFIX + self.name}
            items.append({"lead_id": partition, "stage": {"S": f"record#{record_id}"}, "other": {"S": lead_id}})
            items.append({"lead_id": partition, "stage": {"S": f"lead#{lead_id}"}, "other": {"S": record_id}})
        for start in range(0, len(items), _BATCH_WRITE):
            request: dict[str, Any] = {
                self.table_name: [{"PutRequest": {"Item": item}} for item in items[start : start + _BATCH_WRITE]]
            }
            while request:
                try:
                    answer = self.client.batch_write_item(RequestItems=request)
                except ClientError as error:
                    raise_if_transient(error)
                    raise
                request = answer.get("UnprocessedItems") or {}
