"""StatsFunction: publishes the re-engagement statistics as CloudWatch gauges (hourly)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from reengage.aws import stats_store
from reengage.clock import utc_now
from reengage.observability import count, count_by, logger, metrics
from reengage.settings import Settings
from reengage.stats import statistics

settings = Settings.from_env(os.environ)
stats = stats_store(settings)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    figures = statistics(*stats.read(utc_now()), utc_now())
    count("LeadsTotal", figures["total_leads"])
    count("LeadsEligible", figures["eligible_for_reengagement"])
    count("LeadsWaiting", figures["scheduled_waiting"])
    count_by("LeadsByStage", figures["by_followup_stage"])
    count_by("LeadsByResponse", figures["by_response_status"])
    count("RecentReengagements", figures["recent_reengagements"])
    count("ReengagementSuccessRate", figures["reengagement_success_rate"] * 100, MetricUnit.Percent)
    count("SendsPossiblySent", figures["sends_possibly_sent"])
    return figures
