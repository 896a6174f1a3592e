"""Upkeep of the leads table: backfilling foreign items (migrate) and clearing stale claims (cleanup)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from reengage.clock import InvalidTimeError, canonical, format_time
from reengage.lead_store import DynamoLeadStore
from reengage.leads import DEFAULT_ENGAGEMENT_STAGE, FollowUpStage, Lead, ResponseStatus, ScheduleState, due_schedule
from reengage.ports import InvalidLeadDataError

_IN_FLIGHT = (ScheduleState.CLAIMED.value, ScheduleState.SENDING.value)


@dataclass
class MigrateReport:
    examined: int = 0
    updated: int = 0
    conflicts: int = 0  # changed by someone else meanwhile; run migrate again
    problems: list[str] = field(default_factory=list)


def migration_changes(lead: Lead, raw: dict[str, Any], max_followups: int, now: datetime) -> dict[str, Any]:
    """What an item needs so reengage can find and read it (empty when it is current)."""
    changes: dict[str, Any] = {}
    for name in ("last_contacted", "created_at", "updated_at"):
        value = getattr(lead, name)
        if value:
            try:
                normal = canonical(value)
            except InvalidTimeError:
                continue
            if normal != value:
                changes[name] = normal
                setattr(lead, name, normal)
    if not lead.response_status:
        changes["response_status"] = lead.response_status = ResponseStatus.NO_RESPONSE.value
    if not lead.engagement_stage:
        changes["engagement_stage"] = lead.engagement_stage = DEFAULT_ENGAGEMENT_STAGE
    if "S" in raw.get("engagement_history", {}):
        changes["engagement_history"] = lead.engagement_history
    if lead.schedule_state not in _IN_FLIGHT:
        schedule = due_schedule(lead, max_followups)
        state, at = (schedule[0].value, schedule[1]) if schedule else (None, None)
        if (lead.schedule_state, lead.schedule_at) != (state, at):
            changes["schedule_state"], changes["schedule_at"] = state, at
        if lead.eligible_for_reengagement:
            changes["eligible_for_reengagement"] = False
    if changes:
        changes["updated_at"] = format_time(now)
    return changes


def migrate(
    store: DynamoLeadStore,
    max_followups: int,
    now: datetime,
    progress: Callable[[int], None] = lambda examined: None,
) -> MigrateReport:
    """Backfill index attributes, canonical times and defaults; idempotent, page by page."""
    report = MigrateReport()
    for raw in store.scan_raw():
        report.examined += 1
        progress(report.examined)
        lead_id = raw.get("id", {}).get("S", "?")
        try:
            lead = store.read_raw(raw)
        except InvalidLeadDataError as error:
            report.problems.append(f"lead {lead_id}: {error}")
            continue
        previous_updated_at = lead.updated_at
        for name in ("last_contacted", "created_at", "updated_at"):
            value = getattr(lead, name)
            if value:
                try:
                    canonical(value)
                except InvalidTimeError:
                    report.problems.append(f"lead {lead_id}: {name}={value!r} is not an ISO-8601 time")
        changes = migration_changes(lead, raw, max_followups, now)
        if not changes:
            continue
        if store.set_attributes(lead.id, changes, previous_updated_at):
            report.updated += 1
        else:
            report.conflicts += 1
    return report


@dataclass
class CleanupReport:
    released: int = 0
    sends_in_doubt: list[str] = field(default_factory=list)


def cleanup(store: DynamoLeadStore, max_followups: int, older_than_days: int, now: datetime) -> CleanupReport:
    """Release claims older than N days (the leads become due again) and list sends in doubt."""
    report = CleanupReport()
    before = format_time(now - timedelta(days=older_than_days))
    for entry in list(store.schedule(ScheduleState.CLAIMED, before)):
        lead = store.get(entry.lead_id)
        if lead is None or not lead.claim_stage:
            continue
        schedule = due_schedule(lead, max_followups)
        if store.release_claim(lead.id, FollowUpStage(lead.claim_stage), schedule[1] if schedule else None):
            report.released += 1
    report.sends_in_doubt = [entry.lead_id for entry in store.schedule(ScheduleState.SENDING, before)]
    return report
