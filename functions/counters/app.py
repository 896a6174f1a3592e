"""CountersFunction: keeps the statistics counters up to date from the leads table's stream."""

from __future__ import annotations

import os
from typing import Any

from reengage.aws import lead_store, stats_store
from reengage.observability import logger
from reengage.settings import Settings
from reengage.stats_stream import stream_delta

settings = Settings.from_env(os.environ)
store = lead_store(settings)
stats = stats_store(settings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records", [])
    totals, days = stream_delta(records, store.read_raw)
    # One batch, one set of atomic ADDs: a failed batch is retried whole, never half-counted.
    stats.apply(totals, days)
    return {"records": len(records), "counters_moved": len(totals) + len(days)}
