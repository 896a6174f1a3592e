"""SenderFunction: turn each queued follow-up request into at most one email."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from reengage.aws import follow_up_queue, lead_store, message_writer, ses_mailer
from reengage.observability import logger, metrics
from reengage.sender import FollowUpSender, process_queue_event
from reengage.settings import Settings

settings = Settings.from_env(os.environ)
sender = FollowUpSender(lead_store(settings), ses_mailer(settings), settings, writer=message_writer(settings))
queue = follow_up_queue(settings)

_METRIC_BY_OUTCOME = {
    "sent": "FollowUpsSent",
    "skipped": "FollowUpsSkipped",
    "deferred": "SendsDeferredByCap",
    "failed": "FollowUpsFailed",
    "in_doubt": "FollowUpsInDoubt",
}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response, outcomes = process_queue_event(event, context, sender, queue.retry_later)
    counts = Counter(outcome.kind for outcome in outcomes)
    for kind, name in _METRIC_BY_OUTCOME.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts.get(kind, 0))
    metrics.add_metric(name="RecordsRetried", unit=MetricUnit.Count, value=len(response["batchItemFailures"]))
    written = [outcome for outcome in outcomes if outcome.generator]
    metrics.add_metric(name="AIMessages", unit=MetricUnit.Count, value=sum(o.generator == "ai" for o in written))
    metrics.add_metric(name="AIFallbacks", unit=MetricUnit.Count, value=sum(bool(o.fallback_reason) for o in written))
    metrics.add_metric(name="AIPromptTokens", unit=MetricUnit.Count, value=sum(o.prompt_tokens for o in written))
    metrics.add_metric(
        name="AICompletionTokens", unit=MetricUnit.Count, value=sum(o.completion_tokens for o in written)
    )
    return response
