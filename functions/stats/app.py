"""StatsFunction: publishes the re-engagement statistics as CloudWatch gauges (hourly)."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from reengage import wiring
from reengage.domain.clock import utc_now
from reengage.domain.stats import RECENT_DAYS, statistics
from reengage.observability import count, count_by, logger, metrics
from reengage.ports import Counters
from reengage.settings import Settings


@cache
def _counters() -> Counters:
    return wiring.counters(Settings.from_env(os.environ))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    now = utc_now()
    figures = statistics(*_counters().read(now, RECENT_DAYS), now)
    count("LeadsTotal", figures["total_leads"])
    count("LeadsEligible", figures["eligible_for_reengagement"])
    count("LeadsWaiting", figures["scheduled_waiting"])
    count_by("LeadsByStage", figures["by_followup_stage"])
    count_by("LeadsByResponse", figures["by_response_status"])
    count("RecentReengagements", figures["recent_reengagements"])
    count("ReengagementSuccessRate", figures["reengagement_success_rate"] * 100, MetricUnit.Percent)
    count("SendsPossiblySent", figures["sends_possibly_sent"])
    count("LeadsInvalid", figures["invalid_lead_data"])
    return figures
