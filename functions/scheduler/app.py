"""SchedulerFunction: once a day, claim the leads due a follow-up and enqueue them."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from reengage.aws import follow_up_queue, lead_store
from reengage.clock import utc_now
from reengage.observability import logger, metrics
from reengage.scheduler import CampaignRequest, InvalidCampaignRequestError, run_scheduler
from reengage.settings import Settings

settings = Settings.from_env(os.environ)
store = lead_store(settings)
queue = follow_up_queue(settings)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        request = CampaignRequest.from_event(event, settings)
    except InvalidCampaignRequestError as error:
        # Retrying cannot fix a malformed schedule input: report it and stop.
        logger.error("invalid scheduled event", extra={"error": str(error)})
        metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
        return {"ok": False, "error": str(error)}

    summary = run_scheduler(store, queue, request, settings, utc_now(), context.get_remaining_time_in_millis)
    logger.append_keys(campaign_id=summary.campaign_id)
    metrics.add_metric(name="LeadsDue", unit=MetricUnit.Count, value=summary.eligible)
    metrics.add_metric(name="LeadsClaimed", unit=MetricUnit.Count, value=summary.marked)
    metrics.add_metric(name="ClaimsReclaimed", unit=MetricUnit.Count, value=summary.reclaimed)
    metrics.add_metric(name="EnqueueFailed", unit=MetricUnit.Count, value=summary.enqueue_failed)
    metrics.add_metric(name="LeadsLeftForNextRun", unit=MetricUnit.Count, value=summary.left_for_next_run)
    return {"ok": True, **summary.as_dict()}
