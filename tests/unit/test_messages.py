"""Template follow-ups: every variant through the gate for a corpus of real-world name shapes, stage
tone, natural greetings and durations, escaping, no placeholders."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reengage.domain.knowledge import load_knowledge_file
from reengage.domain.leads import FollowUpStage, Lead
from reengage.domain.messages import _TEMPLATES, describe_elapsed, render_follow_up
from reengage.domain.names import display_company, parse_person
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
SHAPES = [
    json.loads(line)
    for line in (Path(__file__).parents[1] / "data" / "name_shapes.jsonl").read_text(encoding="utf-8").splitlines()
]
COMPANIES = ["Acme Robotics", "ACME ROBOTICS LLC", "Wright & Partners", "Datenwerk GmbH", "3M", ""]
# Enough lead ids that every variant of every stage is chosen at least once.
LEAD_IDS = [f"lead-{n}" for n in range(40)]


def variant_of(message_subject: str, stage: FollowUpStage) -> int:
    for index, template in enumerate(_TEMPLATES[stage]):
        for option in template.subjects:
            pattern = re.escape(option).replace(r"\{first_name\}", ".+").replace(r"\{company\}", ".+")
            if re.fullmatch(pattern, message_subject):
                return index
    raise AssertionError(f"no variant has the subject {message_subject!r}")


def one_lead_per_variant(stage: FollowUpStage) -> list[str]:
    """A lead id that gets each variant of the stage (the choice is a stable hash of the id)."""
    chosen: dict[int, str] = {}
    for lead_id in LEAD_IDS:
        chosen.setdefault(
            variant_of(render_follow_up(replace(LEAD, id=lead_id), stage, KB, NOW).subject, stage), lead_id
        )
    return [chosen[index] for index in sorted(chosen)]


def test_at_least_four_variants_per_stage_and_each_is_chosen() -> None:
    for stage in FollowUpStage:
        assert len(_TEMPLATES[stage]) >= 4
        chosen = {variant_of(render_follow_up(replace(LEAD, id=i), stage, KB, NOW).subject, stage) for i in LEAD_IDS}
        assert chosen == set(range(len(_TEMPLATES[stage])))


VARIANT_LEADS = {stage: one_lead_per_variant(stage) for stage in FollowUpStage}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape["name"] or "empty")
def test_name_shapes_parse_as_a_crm_would(shape: dict[str, str]) -> None:
    assert parse_person(shape["name"]).first == shape["first"]


@pytest.mark.parametrize("company", COMPANIES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape["name"] or "empty")
def test_every_variant_reads_well_for_every_name_shape(shape: dict[str, str], company: str) -> None:
    for stage in FollowUpStage:
        for lead_id in VARIANT_LEADS[stage]:
            lead = replace(LEAD, id=lead_id, name=shape["name"], company=company)
            message = render_follow_up(lead, stage, KB, NOW)
            # Then it passes the gate, greets the right person (or nobody in particular) ...
            assert message.problems == ()
            expected = f"Hi {shape['first']}," if shape["first"] else "Hi there,"
            assert message.text.startswith(expected + "\n\n")
            # ... and has none of the broken shapes: doubled commas, titles as names, placeholders, shouting
            text = message.subject + "\n" + message.text
            assert ",," not in text and " ," not in text and "Dr.," not in text and "Mr.," not in text
            assert not re.search(r"[{}\[\]]|,\s*there\b(?!')", message.subject + message.text.split("\n", 1)[1])
            assert "your team's" not in text and "with your team" not in text
            shown = display_company(company)
            if shown:
                assert shown in text and (company == shown or company not in text)
            assert message.generator == "template"


@pytest.mark.parametrize("stage", list(FollowUpStage))
def test_every_variant_has_the_signature_footer_link_and_stage_tone(stage: FollowUpStage) -> None:
    for lead_id in LEAD_IDS:
        message = render_follow_up(replace(LEAD, id=lead_id), stage, KB, NOW)
        assert "Sam Seller" in message.text and "Sam Seller" in message.html
        assert KB.postal_address in message.text and KB.postal_address in message.html
        assert message.text.count("https://") == 1 and KB.call_to_action_url in message.text
        assert f'href="{KB.call_to_action_url}"' in message.html
        assert not re.match(r"(?i)\s*(re|fwd?)\s*:", message.subject)
        prose = message.prose.lower()
        assert "last week" in prose  # 8 days ago, said as a person would
        if stage is FollowUpStage.FOLLOWUP_2:
            assert re.search(r"last (email|one)|final note|won't email you again", prose)
        else:
            assert not re.search(r"\b(last|final) (email|note|one)\b", prose)
        assert "two or three" not in prose and "do not" not in prose  # no empty promises, contractions


@pytest.mark.parametrize(
    ("days", "now", "expected"),
    [
        (0, NOW, "earlier today"),
        (1, NOW, "yesterday"),
        (4, NOW, "a few days ago"),
        (8, NOW, "last week"),
        (15, NOW, "a couple of weeks ago"),
        (20, datetime(2026, 11, 28, tzinfo=UTC), "earlier this month"),
        (30, NOW, "last month"),
        (70, NOW, "back in September"),
        (400, NOW, "back in October 2025"),
    ],
)
def test_durations_read_naturally(days: int, now: datetime, expected: str) -> None:
    assert describe_elapsed(now - timedelta(days=days), now) == expected
    assert describe_elapsed(None, now) == "a little while ago"


def test_html_escapes_and_hostile_fields_are_left_out() -> None:
    lead = replace(LEAD, name="<b>Ana</b>", company='Acme & "Sons" <script>alert(1)</script>')
    message = render_follow_up(lead, FollowUpStage.FOLLOWUP_1, KB, NOW)
    assert "<script>" not in message.html and "script" not in message.text
    assert "Hi there," in message.text and message.problems == ()
    assert [reason.split(":")[0] for reason in message.left_out] == ["name", "company"]
    ampersand = render_follow_up(replace(LEAD, company="Wright & Partners"), FollowUpStage.FOLLOWUP_1, KB, NOW)
    assert "Wright &amp; Partners" in ampersand.html or "Wright" not in ampersand.html


def test_control_characters_and_header_injection_are_removed() -> None:
    lead = replace(LEAD, company="Acme\r\nBcc: victim@example.com", name="Ana\x00 Lima")
    message = render_follow_up(lead, FollowUpStage.FOLLOWUP_2, KB, NOW)
    assert "\r" not in message.subject and "\n" not in message.subject
    assert "\x00" not in message.text and "victim" not in message.text


def test_missing_name_and_company_read_naturally() -> None:
    for stage in FollowUpStage:
        for lead_id in VARIANT_LEADS[stage]:
            message = render_follow_up(replace(LEAD, id=lead_id, name="", company=""), stage, KB, NOW)
            assert message.text.startswith("Hi there,") and "there" not in message.subject
            assert not message.subject.endswith(",") and "your team," not in message.subject


def test_same_lead_and_stage_always_get_the_same_message() -> None:
    first = render_follow_up(LEAD, FollowUpStage.FOLLOWUP_1, KB, NOW)
    assert render_follow_up(LEAD, FollowUpStage.FOLLOWUP_1, KB, NOW) == first


def test_fields_carrying_links_or_addresses_are_not_repeated() -> None:
    lead = replace(LEAD, company="Visit http://evil.example.net or mail ceo@evil.example.net", name="www.spam.example")
    message = render_follow_up(lead, FollowUpStage.FOLLOWUP_1, KB, NOW)
    assert "evil" not in message.text and "spam" not in message.text
    assert "Hi there," in message.text and message.problems == ()


@pytest.mark.parametrize(
    ("company", "shown"),
    [
        ("Acme Robotics, Inc.", "Acme Robotics"),
        ("ACME ROBOTICS LLC", "Acme Robotics"),
        ("ACME ROBOTICS INC", "Acme Robotics Inc"),
        ("Startup Inc", "Startup Inc"),
        ("Datenwerk GmbH", "Datenwerk"),
        ("Fábrica Digital S.A.", "Fábrica Digital"),
        ("Wright & Partners Ltd", "Wright & Partners"),
        ("IBM", "IBM"),
        ("\uff21\uff43\uff4d\uff45 Robotics", "Acme Robotics"),
    ],
)
def test_companies_read_as_running_text(company: str, shown: str) -> None:
    assert display_company(company) == shown
