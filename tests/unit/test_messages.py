"""Template follow-ups: stage tone, personalisation, escaping, no placeholders."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from reengage.domain.knowledge import load_knowledge_file
from reengage.domain.leads import FollowUpStage, Lead
from reengage.domain.messages import render_follow_up
from reengage.domain.quality import check_follow_up
from tests.conftest import NOW, ago

KB = replace(load_knowledge_file(""), signature="Sam Seller\nNorthbeam Ops")
LEAD = Lead(
    id="lead-7",
    email="ana@example.com",
    name="Ana Lima",
    company="Acme Robotics",
    engagement_status="Sent",
    email_confidence_level="Real",
    last_contacted=ago(days=8),
)


@pytest.mark.parametrize("lead_id", [f"lead-{n}" for n in range(12)])  # covers every template variant
@pytest.mark.parametrize("stage", list(FollowUpStage))
def test_every_template_is_complete_and_personal(stage, lead_id):
    message = render_follow_up(replace(LEAD, id=lead_id), stage, KB, NOW)
    for part in (message.subject, message.text, message.html):
        assert not re.search(r"[{}]", part), "unfilled placeholder"
    assert "Ana" in message.text and "Acme Robotics" in message.text + message.subject
    assert not re.match(r"(?i)\s*(re|fwd?)\s*:", message.subject)
    assert "Sam Seller" in message.text and "Sam Seller" in message.html
    assert KB.postal_address in message.text and KB.postal_address in message.html
    assert message.generator == "template"
    # The templates meet the same bar as AI drafts.
    body = message.text.split("\n\nBest regards,")[0]
    assert check_follow_up(message.subject, body, replace(LEAD, id=lead_id), stage, KB).problems == ()


@pytest.mark.parametrize("lead_id", [f"lead-{n}" for n in range(12)])
def test_first_follow_up_acknowledges_the_earlier_message(lead_id):
    text = render_follow_up(replace(LEAD, id=lead_id), FollowUpStage.FOLLOWUP_1, KB, NOW).text.lower()
    assert "follow up" in text or "following up" in text
    assert "8 days ago" in text


@pytest.mark.parametrize("lead_id", [f"lead-{n}" for n in range(12)])
def test_second_follow_up_says_it_is_the_last(lead_id):
    text = render_follow_up(replace(LEAD, id=lead_id), FollowUpStage.FOLLOWUP_2, KB, NOW).text.lower()
    assert "final" in text or "last one" in text


def test_html_escapes_lead_fields_and_text_keeps_them_plain():
    lead = replace(LEAD, name="<b>Ana</b>", company='Acme & "Sons" <script>alert(1)</script>')
    message = render_follow_up(lead, FollowUpStage.FOLLOWUP_1, KB, NOW)
    assert "<script>" not in message.html
    assert "&lt;script&gt;" in message.html and "&amp;" in message.html
    assert "<b>Ana</b>" in message.text


def test_control_characters_and_header_injection_are_removed():
    lead = replace(LEAD, company="Acme\r\nBcc: victim@example.com", name="Ana\x00 Lima")
    message = render_follow_up(lead, FollowUpStage.FOLLOWUP_2, KB, NOW)
    assert "\r" not in message.subject and "\n" not in message.subject
    assert "\x00" not in message.text


def test_missing_name_and_company_read_naturally():
    message = render_follow_up(replace(LEAD, name="", company=""), FollowUpStage.FOLLOWUP_1, KB, NOW)
    assert "Hi there," in message.text
    assert "your team" in message.text + message.subject


def test_same_lead_and_stage_always_get_the_same_message():
    first = render_follow_up(LEAD, FollowUpStage.FOLLOWUP_1, KB, NOW)
    assert render_follow_up(LEAD, FollowUpStage.FOLLOWUP_1, KB, NOW) == first


def test_fields_carrying_links_or_addresses_are_not_repeated():
    lead = replace(LEAD, company="Visit http://evil.example.net or mail ceo@evil.example.net", name="www.spam.example")
    message = render_follow_up(lead, FollowUpStage.FOLLOWUP_1, KB, NOW)
    assert "evil" not in message.text and "spam" not in message.text
    assert "your team" in message.text + message.subject and "Hi there," in message.text
