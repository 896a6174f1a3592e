"""FeedbackFunction: SES events (via the configuration set's SNS topic) stop, suppress and confirm."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from functools import cache
from typing import Any

from reengage import wiring
from reengage.domain.clock import utc_now
from reengage.domain.ses_events import MalformedEventError, parse_notification
from reengage.observability import count_by, logger, reject
from reengage.ports import Stores
from reengage.services.responses import apply_ses_event
from reengage.settings import Settings


@cache
def _deployment() -> tuple[Settings, Stores]:
    settings = Settings.from_env(os.environ)
    return settings, wiring.stores(settings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    settings, stores = _deployment()
    results: Counter[str] = Counter()
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        reject("SNS event", "no Records list")
        records, results["malformed"] = [], 1
    for record in records:
        sns = record.get("Sns") if isinstance(record, Mapping) else None
        try:
            ses_event = parse_notification(sns.get("Message") if isinstance(sns, Mapping) else None)
        except MalformedEventError as error:
            reject("SNS record", str(error))
            results["malformed"] += 1
            continue
        outcome = apply_ses_event(ses_event, stores, utc_now(), settings.policy)
        logger.info("SES event", extra={"kind": ses_event.kind, "lead_id": ses_event.lead_id, "outcome": outcome})
        results[outcome] += 1
    count_by("SesEvents", results)
    return dict(results)
