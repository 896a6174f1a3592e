"""FeedbackFunction: SES events (via the configuration set's SNS topic) stop, suppress and confirm."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from reengage.aws import lead_store
from reengage.clock import utc_now
from reengage.observability import count_by, logger
from reengage.ses_events import MalformedEventError, apply_event, parse_notification
from reengage.settings import Settings

settings = Settings.from_env(os.environ)
store = lead_store(settings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    results: Counter[str] = Counter()
    for record in event.get("Records", []):
        try:
            ses_event = parse_notification(record.get("Sns", {}).get("Message", ""))
        except MalformedEventError as error:
            logger.error("not an SES event", extra={"error": str(error)})
            results["malformed"] += 1
            continue
        outcome = apply_event(ses_event, store, utc_now(), settings.max_followups)
        logger.info("SES event", extra={"kind": ses_event.kind, "lead_id": ses_event.lead_id, "outcome": outcome})
        results[outcome] += 1
    count_by("SesEvents", results)
    return dict(results)
