"""CountersFunction: keeps the statistics counters up to date from the leads table's stream."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Any

from reengage import wiring
from reengage.adapters.leads_table import read_lead
from reengage.observability import logger, reject
from reengage.ports import Counters
from reengage.services.counters import stream_delta
from reengage.settings import Settings


@cache
def _counters() -> Counters:
    return wiring.counters(Settings.from_env(os.environ))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        reject("stream event", "no Records list")
        return {"records": 0, "counters_moved": 0, "rejected": 1}
    rejected: list[str] = []
    totals, days = stream_delta(records, read_lead, rejected)
    for problem in rejected:
        reject("stream record", problem)
    # One batch, one set of atomic ADDs: a failed batch is retried whole, never half-counted.
    _counters().apply(totals, days)
    return {"records": len(records), "counters_moved": len(totals) + len(days), "rejected": len(rejected)}
