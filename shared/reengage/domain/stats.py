"""The seed's re-engagement statistics, kept as counters so no read costs a table scan (plain Python).

Every lead contributes to a handful of counters (`contribution`); a change to a lead
moves the counters by the difference between its new and old contributions (`delta`).
The DynamoDB stream consumer applies those deltas as they happen; `reengage status
--rebuild` sums the contributions of every lead once. Both feed the same
`statistics` function, so the numbers cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from reengage.domain.clock import InvalidTimeError, parse_time
from reengage.domain.leads import STAGE_ORDER, Lead, ResponseStatus, ScheduleState

SUCCESS_STATUSES = frozenset({ResponseStatus.INTERESTED.value, ResponseStatus.CONVERTED.value})
RECENT_DAYS = 7
STAGE_PREFIX = "stage:"
RESPONSE_PREFIX = "response:"

Counts = dict[str, int]


class Unreadable:
    """An item that cannot be read as a lead: counted as a lead set aside, nothing else."""


UNREADABLE = Unreadable()
Image = Lead | Unreadable | None  # a lead, an unreadable item, or nothing (created / deleted)


def contribution(lead: Image) -> Counts:
    """What one lead adds to the counters."""
    if lead is None:
        return {}
    if isinstance(lead, Unreadable):
        return {"total": 1, "invalid": 1}
    counts: Counts = {"total": 1, RESPONSE_PREFIX + (lead.response_status or ResponseStatus.NO_RESPONSE.value): 1}
    if lead.eligible_for_reengagement:
        counts["eligible"] = 1
    if lead.schedule_state == ScheduleState.DUE:
        counts["waiting"] = 1
    if lead.schedule_state == ScheduleState.SENDING:
        counts["in_progress"] = 1
    if lead.schedule_state == ScheduleState.INVALID:
        counts["invalid"] = 1
    if lead.follow_up_stage:
        counts[STAGE_PREFIX + lead.follow_up_stage] = 1
        counts["followed_up"] = 1
        if (lead.response_status or "") in SUCCESS_STATUSES:
            counts["followed_up_success"] = 1
    if any(entry.get("outcome") == "possibly_sent" for entry in lead.engagement_history):
        counts["possibly_sent"] = 1
    return counts


def sends_by_day(lead: Image) -> Counts:
    """Follow-ups in a lead's history, by UTC day (`YYYY-MM-DD`)."""
    days: Counts = {}
    for entry in lead.engagement_history if isinstance(lead, Lead) else []:
        if entry.get("outcome") != "sent" or entry.get("stage") not in STAGE_ORDER:
            continue
        try:
            day = parse_time(str(entry.get("at", ""))).date().isoformat()
        except InvalidTimeError:
            continue
        days[day] = days.get(day, 0) + 1
    return days


def difference(new: Counts, old: Counts) -> Counts:
    keys = set(new) | set(old)
    return {key: new.get(key, 0) - old.get(key, 0) for key in keys if new.get(key, 0) != old.get(key, 0)}


def add(total: Counts, more: Mapping[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value


def delta(old: Image, new: Image) -> tuple[Counts, Counts]:
    """How a change from `old` to `new` (either may be None) moves the totals and the daily sends."""
    return difference(contribution(new), contribution(old)), difference(sends_by_day(new), sends_by_day(old))


def tally(leads: Iterable[Image]) -> tuple[Counts, Counts]:
    """Totals and daily sends from scratch (the rebuild)."""
    totals: Counts = {}
    days: Counts = {}
    for lead in leads:
        add(totals, contribution(lead))
        add(days, sends_by_day(lead))
    return totals, days


def statistics(totals: Mapping[str, int], days: Mapping[str, int], now: datetime) -> dict[str, Any]:
    """eligible_for_reengagement, by_followup_stage, by_response_status, recent_reengagements
    (follow-ups sent in the last 7 days), reengagement_success_rate (share of followed-up
    leads now Interested or Converted), plus leads waiting, sends in progress and possibly sent."""
    first_day = (now - timedelta(days=RECENT_DAYS - 1)).date().isoformat()
    followed_up = totals.get("followed_up", 0)
    return {
        "total_leads": totals.get("total", 0),
        "eligible_for_reengagement": totals.get("eligible", 0),
        "by_followup_stage": {
            key.removeprefix(STAGE_PREFIX): value
            for key, value in sorted(totals.items())
            if key.startswith(STAGE_PREFIX) and value
        },
        "by_response_status": {
            key.removeprefix(RESPONSE_PREFIX): value
            for key, value in sorted(totals.items())
            if key.startswith(RESPONSE_PREFIX) and value
        },
        "recent_reengagements": sum(value for day, value in days.items() if day >= first_day),
        "reengagement_success_rate": round(totals.get("followed_up_success", 0) / followed_up, 4)
        if followed_up
        else 0.0,
        "scheduled_waiting": totals.get("waiting", 0),
        "sends_in_progress": totals.get("in_progress", 0),
        # Senders that died between the send lock and the record: never re-sent, worth a look.
        "sends_possibly_sent": totals.get("possibly_sent", 0),
        # Items that cannot be read as leads, set aside by the scheduler or the sender (`reengage status`).
        "invalid_lead_data": totals.get("invalid", 0),
    }
