"""SyncFunction: the Airtable pull on its own schedule, and, from the leads table's stream, the CRM
events and the push of what reengage owns back to Airtable. A separate function: nothing here
holds up a send. With no Airtable token configured the pull does nothing and pyairtable is never
imported; events are published either way."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Any

from reengage import wiring
from reengage.adapters.leads_table import read_lead
from reengage.domain.clock import utc_now
from reengage.observability import count, logger, metrics, reject
from reengage.services.crm_sync import configured_push, lead_changes, pull
from reengage.settings import Settings


@cache
def _settings() -> Settings:
    return Settings.from_env(os.environ)


@cache
def _airtable() -> Any:
    return wiring.airtable_sync(_settings())


def _stream(records: list[Any]) -> dict[str, Any]:
    settings = _settings()
    # The events go out first; the Airtable configuration is read only for the push after them.
    outcome = lead_changes(
        records, read_lead, settings.policy, wiring.crm_event_bus(settings), configured_push(_airtable)
    )
    for _ in range(outcome.malformed):
        reject("stream record", "not a DynamoDB stream record")
    count("CrmEventsPublished", outcome.events)
    count("CrmRecordsPushed", outcome.pushed)
    count("CrmRecordsRefused", len(outcome.push_failures))
    if outcome.config_error:
        count("CrmSyncConfigErrors", 1)
        logger.error("Airtable push skipped; CRM events published", extra={"problem": outcome.config_error})
    for failure in outcome.push_failures:
        logger.warning(
            "Airtable refused a record; left for review", extra={"record": failure.record_id, "reason": failure.reason}
        )
    return {
        "records": len(records),
        "events": outcome.events,
        "pushed": outcome.pushed,
        "refused": len(outcome.push_failures),
        "config_error": outcome.config_error,
    }


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        reject("sync event", f"not a JSON object: {type(event).__name__}")
        return {"rejected": 1}
    if "Records" in event:
        if not isinstance(event["Records"], list):
            reject("stream event", "Records is not a list")
            return {"rejected": 1}
        return _stream(event["Records"])
    sync = _airtable()
    if sync is None:
        count("CrmRecordsPulled", 0)  # only without a token, where the schedule is disabled
        return {"sync": "off"}
    settings = _settings()
    table, state, mapping = sync
    report = pull(wiring.stores(settings), table, state, mapping, utc_now(), settings.policy)
    count("CrmRecordsPulled", report.read)
    count("CrmRecordsRejected", len(report.rejected))
    count("CrmRecordsPushed", report.pushed)
    count("CrmRecordsRefused", len(report.push_failures))
    for error in report.rejected:
        logger.warning("Airtable record rejected", extra={"problem": str(error)})
    return {
        "read": report.read,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": len(report.rejected),
        "pushed": report.pushed,
        "refused": len(report.push_failures),
    }
