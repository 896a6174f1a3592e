"""Import rows: every problem reported with row, lead id, field and reason; merges keep reengage's state."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reengage.domain.imports import ImportedLead, RowError, derive_lead_id, merge_import, validate_row
from reengage.domain.leads import FollowUpPolicy, Lead, ScheduleState
from tests.conftest import NOW, ago

ROW = {
    "id": "lead-1",
    "name": "Ana Lima",
    "email": "ana@example.com",
    "company": "Acme",
    "company_website": "https://acme.example.com",
    "engagement_status": "Sent",
    "email_confidence_level": "Real",
    "last_contacted": "2026-11-10T09:00:00+02:00",
}


def errors_of(row):
    result = validate_row(4, row, NOW)
    assert isinstance(result, list), "expected the row to be rejected"
    return {(error.field, error.reason.split(" (")[0]) for error in result}


def test_valid_row_is_normalised():
    result = validate_row(1, ROW, NOW)
    assert isinstance(result, ImportedLead)
    assert result.lead_id == "lead-1"
    assert result.fields["last_contacted"] == "2026-11-10T07:00:00.000000Z"
    assert "id" not in result.fields


def test_id_is_derived_from_the_lowercased_email():
    row = {key: value for key, value in ROW.items() if key != "id"}
    first = validate_row(1, {**row, "email": "Ana@Example.com"}, NOW)
    second = validate_row(2, {**row, "email": "ana@example.com"}, NOW)
    assert isinstance(first, ImportedLead) and isinstance(second, ImportedLead)
    assert first.lead_id == second.lead_id == derive_lead_id("ana@example.com")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"email": "ana@@example.com"}, ("email", "invalid address: must contain exactly one @")),
        ({"email": None}, ("email", "required")),
        ({"engagement_status": None}, ("engagement_status", "required")),
        ({"response_status": "Maybe"}, ("response_status", "unknown value 'Maybe'")),
        ({"follow_up_stage": "Followup_3"}, ("follow_up_stage", "unknown value 'Followup_3'")),
        ({"last_contacted": "yesterday"}, ("last_contacted", "not an ISO-8601 time: 'yesterday'")),
        ({"last_contacted": None}, ("last_contacted", "required when engagement_status is Sent")),
        ({"last_contacted": "2027-06-01T00:00:00Z"}, ("last_contacted", "2027-06-01T00:00:00Z is in the future")),
        ({"name": "Ana\nLima"}, ("name", "contains control characters")),
        ({"company": "Acme\x1b[31m"}, ("company", "contains control characters")),
        ({"name": "x" * 300}, ("name", "longer than 256 characters")),
        ({"name": 42}, ("name", "must be text, got int")),
        ({"company_website": "not a site"}, ("company_website", "not a web address")),
        (
            {"eligible_for_reengagement": "perhaps"},
            ("eligible_for_reengagement", "must be true or false, got 'perhaps'"),
        ),
        ({"engagement_history": "not json"}, ("engagement_history", "must be a JSON list of objects")),
        ({"id": "é" * 100}, ("id", "200 bytes of UTF-8; lead ids are at most 190 bytes so SES events can name them")),
        ({"emial": "typo@example.com"}, ("emial", "unknown field")),
    ],
)
def test_each_problem_is_reported_with_its_field(changes, expected):
    row = {key: value for key, value in {**ROW, **changes}.items() if value is not None}
    assert expected in errors_of(row)


def test_all_problems_of_a_row_are_reported_at_once():
    problems = validate_row(9, {**ROW, "email": "bad", "response_status": "Maybe", "name": "a\tb"}, NOW)
    assert isinstance(problems, list)
    assert {p.field for p in problems} == {"email", "response_status", "name"}
    assert all(isinstance(p, RowError) and p.row == 9 and p.lead_id == "lead-1" for p in problems)
    assert str(problems[0]).startswith("row 9 (lead lead-1): ")


def test_history_accepts_a_json_list_or_a_list():
    as_text = validate_row(1, {**ROW, "engagement_history": '[{"stage": "Initial"}]'}, NOW)
    as_list = validate_row(1, {**ROW, "engagement_history": [{"stage": "Initial"}]}, NOW)
    assert isinstance(as_text, ImportedLead) and isinstance(as_list, ImportedLead)
    assert as_text.fields["engagement_history"] == as_list.fields["engagement_history"] == [{"stage": "Initial"}]


def test_merge_keeps_history_and_sets_defaults_and_schedule():
    imported = validate_row(1, ROW, NOW)
    assert isinstance(imported, ImportedLead)
    existing = Lead(id="lead-1", email="old@example.com", engagement_history=[{"stage": "Initial"}], updated_at=ago(3))
    merged, _ = merge_import(existing, imported, NOW, FollowUpPolicy())
    assert merged.email == "ana@example.com"
    assert merged.engagement_history == [{"stage": "Initial"}]
    assert merged.response_status == "No Response" and merged.engagement_stage == "1st degree"
    assert (merged.schedule_state, merged.schedule_at) == (ScheduleState.DUE, "2026-11-17T07:00:00.000000Z")


def test_merge_does_not_disturb_a_lead_in_flight():
    imported = validate_row(1, {**ROW, "response_status": "Converted"}, NOW)
    assert isinstance(imported, ImportedLead)
    in_flight = Lead(id="lead-1", schedule_state="claimed", schedule_at=ago(0), claim_stage="Followup_1")
    merged, _ = merge_import(in_flight, imported, NOW, FollowUpPolicy())
    # The sender re-checks and skips it; the import must not erase the claim under its feet.
    assert (merged.schedule_state, merged.claim_stage) == ("claimed", "Followup_1")
    assert merged.response_status == "Converted"


def test_merge_of_a_lead_that_cannot_be_followed_up_takes_it_out_of_the_index():
    imported = validate_row(1, {**ROW, "email_confidence_level": "Guess"}, NOW)
    assert isinstance(imported, ImportedLead)
    merged, _ = merge_import(
        replace(Lead(id="lead-1"), schedule_state="due", schedule_at=ago(9)), imported, NOW, FollowUpPolicy()
    )
    assert merged.schedule_state is None and merged.schedule_at is None


@pytest.mark.parametrize(("field", "value"), [("engagement_status", "Emailed"), ("email_confidence_level", "Sure")])
def test_unknown_upstream_values_are_kept_with_a_note_not_rejected(field, value):
    imported = validate_row(3, {**ROW, field: value}, NOW)
    assert isinstance(imported, ImportedLead) and imported.fields[field] == value
    (note,) = imported.notes
    assert note.startswith(f"row 3 (lead lead-1): {field}: {value!r}") and "not eligible" in note
    merged, _ = merge_import(None, imported, NOW, FollowUpPolicy())
    assert merged.schedule_state is None


def test_a_reimport_never_moves_reengage_state_backwards():
    # Given a lead reengage contacted (Followup_1) and that answered "remove me"
    existing = Lead(
        id="lead-1",
        email="ana@example.com",
        engagement_status="Sent",
        email_confidence_level="Real",
        follow_up_stage="Followup_1",
        last_contacted="2026-11-20T09:00:00.000000Z",
        response_status="Rejected",
        engagement_history=[{"stage": "Followup_1", "outcome": "sent"}],
    )
    # When the CRM export (No Response, the first contact, no stage) comes in again
    imported = validate_row(1, {**ROW, "response_status": "No Response", "company": "Acme Inc"}, NOW)
    assert isinstance(imported, ImportedLead)
    merged, notes = merge_import(existing, imported, NOW, FollowUpPolicy())
    # Then what the CRM owns is updated, and nothing reengage owns moves backwards
    assert merged.company == "Acme Inc"
    assert (merged.response_status, merged.follow_up_stage) == ("Rejected", "Followup_1")
    assert merged.last_contacted == "2026-11-20T09:00:00.000000Z"
    assert merged.engagement_history == existing.engagement_history and merged.schedule_state is None
    assert any("response_status" in note and "reengage mark" in note for note in notes)
    assert any("last_contacted" in note for note in notes)


def test_a_crm_may_stop_a_sequence_but_never_overwrites_an_unsubscribe():
    existing = Lead(id="lead-1", email="ana@example.com", response_status="Unsubscribed", suppressed=True)
    imported = validate_row(1, {**ROW, "response_status": "Interested"}, NOW)
    assert isinstance(imported, ImportedLead)
    merged, _ = merge_import(existing, imported, NOW, FollowUpPolicy())
    assert merged.response_status == "Unsubscribed" and merged.suppressed
    open_lead = replace(existing, response_status="No Response", suppressed=False)
    stopped, _ = merge_import(open_lead, imported, NOW, FollowUpPolicy())
    assert stopped.response_status == "Interested" and stopped.schedule_state is None


def test_a_later_contact_the_crm_knows_of_delays_the_next_follow_up():
    existing = Lead(
        id="lead-1",
        email="ana@example.com",
        follow_up_stage="Followup_1",
        last_contacted="2026-11-05T09:00:00.000000Z",
    )
    imported = validate_row(1, ROW, NOW)  # last contact 2026-11-10
    assert isinstance(imported, ImportedLead)
    merged, _ = merge_import(existing, imported, NOW, FollowUpPolicy())
    assert merged.last_contacted == "2026-11-10T07:00:00.000000Z"
