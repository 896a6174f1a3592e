"""The CRM event bus (EventBridge PutEvents through botocore), 10 entries per request.

Entries EventBridge did not take (throttled, an outage) are sent again; if some still fail,
TransientError makes the stream batch retry: events are delivered at least once, and each
carries its idempotency key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from reengage.domain.crm_events import SOURCE, CrmEvent
from reengage.ports import TransientError

_BATCH = 10
_ATTEMPTS = 3


class EventBridgeBus:
    def __init__(self, client: Any, bus_name: str) -> None:
        self.client = client
        self.bus_name = bus_name

    def _entry(self, event: CrmEvent) -> dict[str, Any]:
        return {
            "EventBusName": self.bus_name,
            "Source": SOURCE,
            "DetailType": event.type.value,
            "Resources": [],
            "Detail": json.dumps(event.body(), sort_keys=True),
        }

    def publish(self, events: Sequence[CrmEvent]) -> int:
        """Put every event on the bus; returns how many were put."""
        for start in range(0, len(events), _BATCH):
            pending = [self._entry(event) for event in events[start : start + _BATCH]]
            for _ in range(_ATTEMPTS):
                try:
                    answer = self.client.put_events(Entries=pending)
                except (ClientError, BotoCoreError) as error:
                    raise TransientError(f"EventBridge PutEvents failed: {error}") from error
                if not answer.get("FailedEntryCount"):
                    pending = []
                    break
                pending = [
                    entry
                    for entry, result in zip(pending, answer.get("Entries", []), strict=False)
                    if result.get("ErrorCode")
                ]
            if pending:
                raise TransientError(f"EventBridge did not take {len(pending)} events")
        return len(events)
