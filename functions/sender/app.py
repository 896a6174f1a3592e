"""SenderFunction: turn each queued follow-up request into at most one email."""

from __future__ import annotations

import os
from typing import Any

from reengage.aws import follow_up_queue, lead_store, message_writer, ses_mailer, unsubscribe_links
from reengage.observability import logger, metrics, send_outcome_metrics
from reengage.sender import FollowUpSender, process_queue_event
from reengage.settings import Settings

settings = Settings.from_env(os.environ)
sender = FollowUpSender(
    lead_store(settings),
    ses_mailer(settings),
    settings,
    writer=message_writer(settings),
    unsubscribe=unsubscribe_links(settings),
)
queue = follow_up_queue(settings)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response, outcomes = process_queue_event(event, context, sender, queue.retry_later)
    send_outcome_metrics(outcomes, retried=len(response["batchItemFailures"]))
    return response
