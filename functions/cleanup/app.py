"""CleanupFunction: weekly, releases eligibility flags left set for too long (claims nobody finished)."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from reengage import wiring
from reengage.domain.clock import utc_now
from reengage.observability import count, logger, metrics, reject
from reengage.ports import Stores
from reengage.services.upkeep import cleanup
from reengage.settings import Settings

DEFAULT_DAYS = 30
MAX_DAYS = 3650


@cache
def _deployment() -> tuple[Settings, Stores]:
    settings = Settings.from_env(os.environ)
    return settings, wiring.stores(settings)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    settings, stores = _deployment()
    days = event.get("days", DEFAULT_DAYS) if isinstance(event, dict) else DEFAULT_DAYS
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        error = f"days must be a whole number from 1 to {MAX_DAYS}, got {repr(days)[:100]}"
        reject("cleanup event", error)
        return {"ok": False, "error": error}
    report = cleanup(stores, settings.policy, days, utc_now())
    count("StaleClaimsCleared", report.released)
    if report.sends_in_doubt:
        logger.warning("sends in doubt need a review", extra={"lead_ids": report.sends_in_doubt})
    return {"ok": True, "released": report.released, "sends_in_doubt": report.sends_in_doubt}
