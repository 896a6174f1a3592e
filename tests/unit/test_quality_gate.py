"""The gate against the adversarial corpus (tests/data): every model output gets its expected verdict,
and every hostile lead record is left out of the message rather than repeated."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reengage.domain.knowledge import load_knowledge_file
from reengage.domain.leads import FollowUpStage
from reengage.domain.messages import render_follow_up
from reengage.domain.quality import LeadFacts, check_follow_up, field_problems
from tests.adversarial import LEAD, DraftCase, HostileLead, draft_cases, hostile_leads
from tests.conftest import NOW

KB = load_knowledge_file("")
DRAFTS = draft_cases()
LEADS = hostile_leads()


def test_the_corpus_is_big_and_varied() -> None:
    assert len(DRAFTS) >= 80 and len(LEADS) >= 30
    kinds = Counter(case.kind for case in DRAFTS)
    assert len(kinds) >= 7 and kinds["good"] >= 5  # drafts that must pass keep the gate honest
    assert sum(case.expect == "pass" for case in DRAFTS) >= 8
    assert len({case.kind for case in LEADS}) >= 10


@pytest.mark.parametrize("case", DRAFTS, ids=str)
def test_each_model_output_gets_its_verdict(case: DraftCase) -> None:
    # Given a model output for the lead, with the model's own reading of the stage
    # When the gate reads it (the greeting is the one reengage writes)
    body = "Hi Ana,\n\n" + case.body if not case.body.lower().startswith(("hi ", "hello")) else case.body
    verdict = check_follow_up(
        case.subject,
        body,
        LEAD,
        case.stage,
        KB,
        NOW,
        is_final=case.is_final,
        acknowledges_previous=case.acknowledges_previous,
    )
    # Then the verdict is the expected one, for the expected reason
    if case.expect == "pass":
        assert verdict.problems == ()
    else:
        assert not verdict.ok
        assert any(case.reason.lower() in problem.lower() for problem in verdict.problems), verdict.problems


@pytest.mark.parametrize("case", LEADS, ids=str)
def test_hostile_lead_fields_are_left_out_never_repeated(case: HostileLead) -> None:
    # Given a lead record with hostile or odd fields
    facts = LeadFacts.of(case.lead, NOW)
    # Then only what passes the gate is kept, in display form
    assert (facts.first_name, facts.company) == (case.expect_first_name, case.expect_company)
    for stage in FollowUpStage:
        # And the template message passes the gate and repeats nothing hostile
        message = render_follow_up(case.lead, stage, KB, NOW)
        assert message.problems == ()
        for part in (message.subject, message.text, message.html):
            for forbidden in case.forbidden:
                assert forbidden not in part
        if case.lead.company and not case.expect_company:
            assert any(reason.startswith("company:") for reason in message.left_out)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("Acme Robotics", None),
        ("Fábrica Digital", None),
        ("Wright & Partners", None),
        ("3M", None),
        ("Studio 54", None),
        ("AT&T", None),
        ("Li Wei", None),
        ("山田太郎", None),
        ("Mary-Kate O'Neil", None),
        ("acme robotics dot com", "link or domain"),
        ("+1 (415) 555-0132", "phone number"),
        ("Acme Robotics (Company Name)", "placeholder"),
    ],
)
def test_field_check_keeps_real_names_and_stops_hostile_ones(value: str, fragment: str | None) -> None:
    problems = field_problems(value)
    if fragment is None:
        assert problems == []
    else:
        assert any(fragment in problem for problem in problems), problems


# Any text a CRM might hold, including the characters attackers like: letters of any script, digits,
# punctuation, symbols, invisible and bidi controls, line breaks.
ANY_FIELD = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list("@.:/%$#{}[]()<>|*_\u200b\u202e\uff20\u3002\r\n ")),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(name=ANY_FIELD, company=ANY_FIELD, stage=st.sampled_from(list(FollowUpStage)))
def test_any_lead_data_gives_a_message_that_passes_the_gate(name: str, company: str, stage: FollowUpStage) -> None:
    # Given any name and company at all
    lead = replace(LEAD, name=name, company=company)
    # When the template message is rendered
    message = render_follow_up(lead, stage, KB, NOW)
    # Then it passes the gate (personal or generic form), and a field it left out is nowhere in it
    assert message.problems == ()
    facts = LeadFacts.of(lead, NOW)
    if company.strip() and not facts.company and len(company.strip()) >= 4:
        assert company.strip() not in message.text


@settings(max_examples=200, deadline=None)
@given(subject=ANY_FIELD, body=st.text(max_size=400), stage=st.sampled_from(list(FollowUpStage)))
def test_the_gate_reads_any_text_without_failing(subject: str, body: str, stage: FollowUpStage) -> None:
    # Given any subject and body a model could return; when the gate reads them; then it gives a verdict
    verdict = check_follow_up(subject, "Hi Ana,\n\n" + body, LEAD, stage, KB, NOW)
    assert isinstance(verdict.problems, tuple)
