"""CountersFunction: keeps the statistics counters up to date from the leads table's stream."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from reengage import wiring
from reengage.adapters.leads_table import read_lead
from reengage.observability import logger
from reengage.ports import Counters
from reengage.services.counters import stream_delta
from reengage.settings import Settings


@cache
def _counters() -> Counters:
    return wiring.counters(Settings.from_env(os.environ))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records", [])
    totals, days = stream_delta(records, read_lead)
    # One batch, one set of atomic ADDs: a failed batch is retried whole, never half-counted.
    _counters().apply(totals, days)
    return {"records": len(records), "counters_moved": len(totals) + len(days)}
