"""What the lead's side tells us: replies, CRM updates, unsubscribes (plain Python over the store port).

Any response other than `No Response` stops the sequence at once: the lead leaves the
schedule (a lead already claimed keeps its claim and the sender, which re-checks the
response status when it locks, skips it). Unsubscribes, hard bounces and complaints
also put the address on the suppression list, so no other lead with that address is
ever mailed either.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from reengage.clock import format_time
from reengage.leads import ResponseStatus, ScheduleState, due_schedule
from reengage.ports import LeadStore

SUPPRESSING = frozenset({ResponseStatus.UNSUBSCRIBED, ResponseStatus.BOUNCED, ResponseStatus.COMPLAINED})
_IN_FLIGHT = (ScheduleState.CLAIMED.value, ScheduleState.SENDING.value)
_ATTEMPTS = 3


class UnknownLeadError(LookupError):
    """No lead has that id."""


def record_response(
    store: LeadStore,
    lead_id: str,
    status: ResponseStatus,
    source: str,
    now: datetime,
    max_followups: int,
    **details: Any,
) -> bool:
    """Set a lead's response status (and suppression); False if it already had that status."""
    for _ in range(_ATTEMPTS):
        lead = store.get(lead_id)
        if lead is None:
            raise UnknownLeadError(f"no lead with id {lead_id!r}")
        if lead.response_status == status.value and (lead.suppressed or status not in SUPPRESSING):
            return False
        at = format_time(now)
        updated = replace(
            lead,
            response_status=status.value,
            suppressed=lead.suppressed or status in SUPPRESSING,
            engagement_history=[
                *lead.engagement_history,
                {"outcome": "response", "status": status.value, "source": source, "at": at, **details},
            ],
            updated_at=at,
        )
        if lead.schedule_state not in _IN_FLIGHT:
            schedule = due_schedule(updated, max_followups)
            updated.schedule_state, updated.schedule_at = (schedule[0].value, schedule[1]) if schedule else (None, None)
            updated.eligible_for_reengagement = False
        if store.put(updated, previous=lead):
            if status in SUPPRESSING and lead.email:
                store.suppress(lead.email, status.value, at)
            return True
    raise TimeoutError(f"lead {lead_id} kept changing; try again")
