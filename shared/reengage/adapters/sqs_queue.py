"""The follow-up queue (SQS): one message per claimed lead, sent in batches of 10."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from reengage.ports import FollowUpRequest

SQS_BATCH_LIMIT = 10


def encode_request(request: FollowUpRequest) -> str:
    return json.dumps(
        {"lead_id": request.lead_id, "stage": request.stage.value, "campaign_id": request.campaign_id},
        separators=(",", ":"),
    )


class SqsFollowUpQueue:
    """Satisfies `reengage.ports.FollowUpQueue`."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url
        self.calls = 0

    def enqueue(self, requests: Sequence[FollowUpRequest]) -> list[FollowUpRequest]:
        failed: list[FollowUpRequest] = []
        for start in range(0, len(requests), SQS_BATCH_LIMIT):
            batch = list(requests[start : start + SQS_BATCH_LIMIT])
            entries = [
                {"Id": str(index), "MessageBody": encode_request(request), "DelaySeconds": request.delay_seconds}
                for index, request in enumerate(batch)
            ]
            self.calls += 1
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError):
                # The caller releases these claims; the leads stay due for the next run.
                failed.extend(batch)
                continue
            failed.extend(batch[int(entry["Id"])] for entry in response.get("Failed", []))
        return failed

    def retry_later(self, receipt_handle: str, delay_seconds: int) -> None:
        """Make a received message visible again only after `delay_seconds` (best effort)."""
        try:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=min(delay_seconds, 43_200)
            )
        except (ClientError, BotoCoreError):
            pass  # the queue's own visibility timeout applies instead
