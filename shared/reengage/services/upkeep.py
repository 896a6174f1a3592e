"""Upkeep of the leads table: backfilling foreign items (migrate) and clearing stale claims (cleanup)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from reengage.domain.clock import InvalidTimeError, canonical, format_time
from reengage.domain.leads import (
    DEFAULT_ENGAGEMENT_STAGE,
    IN_FLIGHT,
    FollowUpPolicy,
    FollowUpStage,
    Lead,
    ResponseStatus,
    ScheduleState,
)
from reengage.ports import Stores, UnreadableLead

_TIME_FIELDS = ("last_contacted", "created_at", "updated_at")


@dataclass
class MigrateReport:
    examined: int = 0
    updated: int = 0
    conflicts: int = 0  # changed by someone else meanwhile; run migrate again
    problems: list[str] = field(default_factory=list)


def migration_changes(lead: Lead, policy: FollowUpPolicy, now: datetime) -> dict[str, Any]:
    """What an item needs so reengage can find and read it (empty when it is current)."""
    changes: dict[str, Any] = {}
    for name in _TIME_FIELDS:
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
    if lead.history_stored_as_text:
        changes["engagement_history"] = list(lead.engagement_history)
    changes.update(_schedule_changes(lead, policy))
    if changes:
        changes["updated_at"] = format_time(now)
    return changes


def _schedule_changes(lead: Lead, policy: FollowUpPolicy) -> dict[str, Any]:
    """The schedule keys the lead's state calls for, and its place in the index under them."""
    if lead.schedule_state in IN_FLIGHT:
        # A run holds it: same state, filed under its shard when it is not (claimed before sharding).
        if not lead.schedule_unindexed:
            return {}
        return {"schedule_state": lead.schedule_state, "schedule_at": lead.schedule_at}
    changes: dict[str, Any] = {}
    key = policy.schedule_key(lead)
    state, at = (key.state.value, key.at) if key else (None, None)
    if (lead.schedule_state, lead.schedule_at) != (state, at) or (state and lead.schedule_unindexed):
        changes["schedule_state"], changes["schedule_at"] = state, at
    if lead.eligible_for_reengagement:
        changes["eligible_for_reengagement"] = False
    return changes


def _time_problems(lead: Lead) -> list[str]:
    problems = []
    for name in _TIME_FIELDS:
        value = getattr(lead, name)
        if value:
            try:
                canonical(value)
            except InvalidTimeError:
                problems.append(f"lead {lead.id}: {name}={value!r} is not an ISO-8601 time")
    return problems


def migrate(
    stores: Stores,
    policy: FollowUpPolicy,
    now: datetime,
    progress: Callable[[int], None] = lambda examined: None,
) -> MigrateReport:
    """Backfill index attributes, canonical times and defaults; idempotent, page by page."""
    report = MigrateReport()
    for item in stores.leads.scan():
        report.examined += 1
        progress(report.examined)
        if isinstance(item, UnreadableLead):
            report.problems.append(f"lead {item.lead_id}: {item.problem}")
            continue
        read_version = item.version
        report.problems.extend(_time_problems(item))
        changes = migration_changes(item, policy, now)
        if not changes:
            continue
        if stores.leads.set_attributes(item.id, changes, read_version):
            report.updated += 1
        else:
            report.conflicts += 1
    return report


@dataclass
class CleanupReport:
    released: int = 0
    sends_in_doubt: list[str] = field(default_factory=list)


def cleanup(stores: Stores, policy: FollowUpPolicy, older_than_days: int, now: datetime) -> CleanupReport:
    """Release claims older than N days (the leads become due again) and list sends in doubt."""
    report = CleanupReport()
    before = format_time(now - timedelta(days=older_than_days))
    for entry in list(stores.schedule.entries(ScheduleState.CLAIMED, before)):
        lead = stores.leads.get(entry.lead_id)
        if lead is None or not lead.claim_stage:
            continue
        key = policy.schedule_key(lead)
        if stores.schedule.release_claim(lead.id, FollowUpStage(lead.claim_stage), key.at if key else None):
            report.released += 1
    report.sends_in_doubt = [entry.lead_id for entry in stores.schedule.entries(ScheduleState.SENDING, before)]
    return report
