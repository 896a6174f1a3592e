"""The seed's re-engagement statistics, computed from leads (plain Python)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from reengage.clock import InvalidTimeError, parse_time
from reengage.leads import STAGE_ORDER, Lead, ResponseStatus, ScheduleState

SUCCESS_STATUSES = frozenset({ResponseStatus.INTERESTED.value, ResponseStatus.CONVERTED.value})
RECENT_DAYS = 7


def _sent_since(lead: Lead, since: datetime) -> int:
    count = 0
    for entry in lead.engagement_history:
        if entry.get("outcome") != "sent" or entry.get("stage") not in STAGE_ORDER:
            continue
        try:
            count += parse_time(str(entry.get("at", ""))) >= since
        except InvalidTimeError:
            continue
    return count


def compute_statistics(leads: Iterable[Lead], now: datetime) -> dict[str, Any]:
    """eligible_for_reengagement, by_followup_stage, by_response_status,
    recent_reengagements (follow-ups sent in the last 7 days), reengagement_success_rate
    (share of followed-up leads now Interested or Converted), plus in-flight counts."""
    since = now - timedelta(days=RECENT_DAYS)
    by_stage: Counter[str] = Counter()
    by_response: Counter[str] = Counter()
    eligible = recent = followed_up = successes = due_waiting = in_doubt = total = 0
    possibly_sent: list[str] = []
    for lead in leads:
        total += 1
        eligible += lead.eligible_for_reengagement
        by_response[lead.response_status or ResponseStatus.NO_RESPONSE.value] += 1
        due_waiting += lead.schedule_state == ScheduleState.DUE
        in_doubt += lead.schedule_state == ScheduleState.SENDING
        if lead.follow_up_stage:
            by_stage[lead.follow_up_stage] += 1
            followed_up += 1
            successes += (lead.response_status or "") in SUCCESS_STATUSES
        recent += _sent_since(lead, since)
        if any(entry.get("outcome") == "possibly_sent" for entry in lead.engagement_history):
            possibly_sent.append(lead.id)
    return {
        "total_leads": total,
        "eligible_for_reengagement": eligible,
        "by_followup_stage": dict(sorted(by_stage.items())),
        "by_response_status": dict(sorted(by_response.items())),
        "recent_reengagements": recent,
        "reengagement_success_rate": round(successes / followed_up, 4) if followed_up else 0.0,
        "scheduled_waiting": due_waiting,
        "sends_in_progress": in_doubt,
        # Senders that died between the send lock and the record: never re-sent, worth a look.
        "sends_possibly_sent": len(possibly_sent),
        "possibly_sent_leads": sorted(possibly_sent)[:50],
    }
