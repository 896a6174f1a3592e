"""A bulk import writes lead items serialized without building a pynamodb model: they must be the
very items the model would write."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reengage.adapters.leads_table import _attribute_values, _to_model, bind_leads_table
from reengage.domain.leads import Lead, ScheduleState

BASE = Lead(id="lead-1", email="Dana@Example.com", name="Dana", engagement_status="Sent")
VARIANTS = [
    BASE,
    replace(BASE, name="", company="", company_website="", email_confidence_level=""),  # empty text stays empty
    replace(BASE, email="", timezone="", country="", paused_until=None),  # absent, never empty
    replace(
        BASE,
        company="Acme",
        company_website="https://acme.example.co.uk/about",
        timezone="Europe/Berlin",
        country="DE",
        paused_until="2026-12-01T00:00:00.000000Z",
        last_contacted="2026-11-10T09:00:00.000000Z",
        follow_up_stage="Followup_1",
        response_status="Interested",
        eligible_for_reengagement=True,
        suppressed=True,
        engagement_history=[{"outcome": "sent", "stage": "Followup_1", "n": 3, "ok": True, "x": None, "l": [1.5]}],
        created_at="2026-01-01T00:00:00.000000Z",
        updated_at="2026-11-10T09:00:00.000000Z",
        schedule_state=ScheduleState.DUE,
        schedule_at="2026-11-17T09:00:00.000000Z",
        claim_stage="Followup_1",
        version=41,
    ),
    replace(BASE, eligible_for_reengagement=False, suppressed=False, version=0, engagement_history=[]),
]


@pytest.mark.parametrize("lead", VARIANTS)
def test_a_lead_item_serialized_directly_is_the_one_the_model_writes(lead: Lead) -> None:
    bind_leads_table("leads")
    from_model = _to_model(lead).serialize()
    from_model.pop("id")
    assert _attribute_values(lead) == from_model
