"""SchedulerFunction: once a day, claim the leads due a follow-up and enqueue them."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from reengage import wiring
from reengage.domain.clock import utc_now
from reengage.observability import count, logger, metrics, reject
from reengage.ports import FollowUpQueue, Stores
from reengage.services.scheduler import CampaignRequest, InvalidCampaignRequestError, new_campaign_id, run_scheduler
from reengage.settings import Settings


@cache
def _deployment() -> tuple[Settings, Stores, FollowUpQueue]:
    settings = Settings.from_env(os.environ)
    return settings, wiring.stores(settings), wiring.follow_up_queue(settings)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    settings, stores, queue = _deployment()
    try:
        request = CampaignRequest.from_event(event, settings)
    except InvalidCampaignRequestError as error:
        # Retrying cannot fix a malformed schedule input: report it and stop.
        reject("scheduled event", str(error))
        return {"ok": False, "error": str(error)}

    now = utc_now()
    campaign_id = new_campaign_id(now)
    logger.append_keys(campaign_id=campaign_id)
    summary = run_scheduler(stores, queue, request, settings, now, context.get_remaining_time_in_millis, campaign_id)
    count("SchedulerRuns", 1)
    count("LeadsDue", summary.eligible)
    count("LeadsClaimed", summary.marked)
    count("ClaimsReclaimed", summary.reclaimed)
    count("EnqueueFailed", summary.enqueue_failed)
    count("LeadsLeftForNextRun", summary.left_for_next_run)
    count("DuplicateAddresses", summary.duplicate_email)
    count("SendsSettledInDoubt", summary.settled_in_doubt)
    count("LeadsSetAside", summary.invalid)
    count("SchedulerLeadErrors", summary.errors)
    return {"ok": True, **summary.as_dict()}
