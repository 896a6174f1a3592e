"""Settings parsed once from the environment; statistics computed from leads."""

from __future__ import annotations

import pytest

from reengage.domain.leads import Lead
from reengage.domain.stats import statistics, tally
from reengage.settings import Settings, SettingsError
from tests.conftest import NOW, ago

BASE = {
    "LEADS_TABLE_NAME": "leads",
    "SEND_LEDGER_TABLE_NAME": "ledger",
    "QUEUE_URL": "https://sqs/q",
    "SENDER_EMAIL": "sales@example.com",
}


def test_defaults():
    settings = Settings.from_env(BASE)
    assert (settings.days_between_followups, settings.max_followups, settings.dry_run) == (7, 2, False)


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {"SENDER_EMAIL": "nope", "DAYS_BETWEEN_FOLLOWUPS": "seven", "MAX_FOLLOWUPS": "3", "DRY_RUN": "maybe"}
        )
    message = str(raised.value)
    for expected in (
        "LEADS_TABLE_NAME is not set",
        "QUEUE_URL is not set",
        "SENDER_EMAIL='nope' is not a valid address",
        "DAYS_BETWEEN_FOLLOWUPS='seven' is not a whole number",
        "MAX_FOLLOWUPS=3 must be between 1 and 2",
        "DRY_RUN='maybe' must be true or false",
    ):
        assert expected in message


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("TRUE", True), ("1", True), ("false", False), ("", False)])
def test_dry_run_values(raw, value):
    assert Settings.from_env({**BASE, "DRY_RUN": raw}).dry_run is value


def test_statistics_match_the_seed_shape():
    sent = {"outcome": "sent", "stage": "Followup_1", "at": ago(2)}
    leads = [
        Lead(id="1", follow_up_stage="Followup_1", response_status="Converted", engagement_history=[sent]),
        Lead(id="2", follow_up_stage="Followup_2", response_status="No Response"),
        Lead(
            id="3",
            follow_up_stage="Followup_1",
            response_status="Interested",
            engagement_history=[{**sent, "at": ago(10)}],
        ),
        Lead(id="4", eligible_for_reengagement=True, schedule_state="claimed"),
        Lead(id="5", response_status=None, schedule_state="due"),
    ]
    stats = statistics(*tally(leads), NOW)
    assert stats["eligible_for_reengagement"] == 1
    assert stats["by_followup_stage"] == {"Followup_1": 2, "Followup_2": 1}
    assert stats["by_response_status"] == {"Converted": 1, "Interested": 1, "No Response": 3}
    assert stats["recent_reengagements"] == 1
    assert stats["reengagement_success_rate"] == round(2 / 3, 4)
    assert stats["scheduled_waiting"] == 1


def test_to_env_round_trips():
    settings = Settings.from_env({**BASE, "DRY_RUN": "true", "MAX_FOLLOWUPS": "1", "KNOWLEDGE_BASE": "ssm:/kb"})
    assert Settings.from_env(settings.to_env()) == settings
