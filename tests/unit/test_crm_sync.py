"""The Airtable field mapping, pulled records under the import ownership rules, and the CRM events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reengage.domain.airtable_mapping import DEFAULT_FIELDS, FieldMapping, MappingError
from reengage.domain.crm_events import EventType, events_for_change
from reengage.domain.crm_sync import (
    described,
    history_lines,
    merge_pulled,
    push_fields,
    pushed_changed,
    validate_record,
)
from reengage.domain.imports import RowError
from reengage.domain.leads import FollowUpPolicy, Lead

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
POLICY = FollowUpPolicy()
MAPPING = FieldMapping.from_dict({})


def _record(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "Name": "Ada Lovelace",
        "Email": "ada@example.com",
        "Company": "Analytical",
        "Engagement_Status": "Sent",
        "Email_Confidence_Level": "Real",
        "Last_Contacted": "2026-11-10T09:00:00.000Z",
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def _pulled(existing: Lead | None, **fields: object) -> tuple[Lead, list[str], bool]:
    row = MAPPING.row("recAAA", _record(**fields))
    checked = validate_record(1, "recAAA", row, NOW)
    assert not isinstance(checked, list), checked
    return merge_pulled(existing, checked, NOW, POLICY, row.get("last_contacted"))


def _sent_lead(**changes: object) -> Lead:
    lead = Lead(
        id="recAAA",
        email="ada@example.com",
        name="Ada Lovelace",
        engagement_status="Sent",
        email_confidence_level="Real",
        last_contacted="2026-11-17T09:00:00.000000Z",
        follow_up_stage="Followup_1",
        response_status="No Response",
        engagement_history=[
            {"stage": "Followup_1", "at": "2026-11-17T09:00:00.000000Z", "outcome": "sent", "generator": "ai"}
        ],
        version=3,
    )
    return replace(lead, **changes)  # type: ignore[arg-type]


# --- mapping -----------------------------------------------------------------------------------


def test_defaults_are_the_seed_field_names():
    assert MAPPING.fields["engagement_status"] == "Engagement_Status"
    assert MAPPING.fields["response_status"] == "Response_Status"
    assert MAPPING.fields["last_contacted"] == "Last_Contacted"
    assert MAPPING.fields["email_confidence_level"] == "Email_Confidence_Level"
    assert MAPPING.fields["follow_up_stage"] == "Follow_Up_Stage"


def test_a_user_mapping_renames_and_unmaps_fields():
    mapping = FieldMapping.from_json('{"email": "Work Email", "timezone": null}', "file m.json")
    assert mapping.fields["email"] == "Work Email"
    assert "timezone" not in mapping.fields
    assert mapping.row("rec1", {"Work Email": "a@b.co", "Timezone": "Europe/Berlin"}) == {
        "email": "a@b.co",
        "id": "rec1",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "JSON object"),
        ('{"emial": "E"}', "'emial' is not a lead attribute"),
        ('{"email": null}', "email must be mapped"),
        ('{"name": "Email"}', "both map to the field 'Email'"),
        ('{"name": 3}', "non-empty text or null"),
        ("{not json", "not JSON"),
    ],
)
def test_a_bad_mapping_says_what_is_wrong_and_where(text: str, message: str):
    with pytest.raises(MappingError, match="ssm:/m") as raised:
        FieldMapping.from_json(text, "ssm:/m")
    assert message in str(raised.value)


def test_every_default_field_is_distinct():
    assert len(set(DEFAULT_FIELDS.values())) == len(DEFAULT_FIELDS)


# --- pull --------------------------------------------------------------------------------------


def test_a_new_record_becomes_a_lead_keyed_by_its_record_id():
    lead, _, changed = _pulled(None)
    assert (lead.id, lead.email, lead.last_contacted) == ("recAAA", "ada@example.com", "2026-11-10T09:00:00.000000Z")
    assert changed and lead.schedule_state == "due"


def test_a_lead_id_column_wins_over_the_record_id():
    row = MAPPING.row("recAAA", _record(Lead_ID="lead-7"))
    assert row["id"] == "lead-7"


def test_the_crm_cannot_move_the_stage_back_or_revive_a_bounced_lead():
    existing = _sent_lead(response_status="Bounced", suppressed=True, schedule_state=None)
    lead, notes, _ = _pulled(existing, Follow_Up_Stage="", Response_Status="No Response")
    assert lead.follow_up_stage == "Followup_1"
    assert lead.response_status == "Bounced"
    assert any("suppressed for good" in note for note in notes)


def test_the_crm_may_stop_a_sequence():
    lead, _, changed = _pulled(_sent_lead(), Response_Status="Converted", Last_Contacted="2026-11-17T09:00:00Z")
    assert changed and lead.response_status == "Converted" and lead.schedule_state is None
    assert lead.engagement_history[-1]["source"] == "import"


def test_an_unknown_upstream_status_is_stored_never_eligible():
    lead, notes, _ = _pulled(None, Response_Status="Meeting Booked", Follow_Up_Stage="Followup_9")
    assert lead.response_status == "Meeting Booked" and lead.follow_up_stage == "Followup_9"
    assert not POLICY.standing(lead).due and lead.schedule_state is None
    assert sum("stored as given" in note for note in notes) == 2


def test_an_unchanged_record_changes_nothing():
    first, _, _ = _pulled(None)
    stored = replace(first, version=1)
    _, _, changed = _pulled(stored)
    assert not changed


def test_a_bad_record_is_reported_with_the_airtable_field():
    row = MAPPING.row("recBAD", _record(Email="not-an-address"))
    errors = validate_record(4, "recBAD", row, NOW)
    assert isinstance(errors, list)
    described_error = described(errors[0], MAPPING, "recBAD")
    assert described_error.field == "Email (email)"
    assert "recBAD" in str(described_error) and "invalid address" in str(described_error)
    assert isinstance(described_error, RowError)


# --- push --------------------------------------------------------------------------------------


def test_push_writes_only_what_differs_and_treats_missing_cells_as_empty():
    lead = _sent_lead()
    record = {
        "Follow_Up_Stage": "Followup_1",
        "Response_Status": "No Response",
        "Last_Contacted": "2026-11-17T09:00:00.000Z",  # the same instant, another form
        "Reengage_History": history_lines(lead),
    }  # Eligible_For_Reengagement absent: an unticked checkbox
    assert push_fields(MAPPING, lead, record) == {}
    assert push_fields(MAPPING, replace(lead, response_status="Bounced"), record) == {"Response_Status": "Bounced"}


def test_history_lines_are_short_and_one_per_follow_up_or_response():
    lead = _sent_lead()
    lead.engagement_history.append({"outcome": "response", "status": "Interested", "source": "reply", "at": "x"})
    lead.engagement_history.append({"outcome": "paused", "at": "2026-11-18T09:00:00Z"})
    assert history_lines(lead).splitlines() == [
        "2026-11-17 09:00 UTC Followup_1 sent (ai)",
        "x response: Interested (reply)",
    ]


def test_a_change_outside_the_pushed_attributes_pushes_nothing():
    lead = _sent_lead()
    assert not pushed_changed(lead, replace(lead, name="Ada King", updated_at="later", version=4))
    assert pushed_changed(lead, replace(lead, follow_up_stage="Followup_2"))
    assert not pushed_changed(None, lead)


# --- events ------------------------------------------------------------------------------------


def _types(old: Lead | None, new: Lead | None) -> list[str]:
    return [event.type.value for event in events_for_change(old, new, POLICY)]


def test_a_send_is_follow_up_sent_and_the_last_one_finishes_the_sequence():
    old = _sent_lead()
    sent = {"stage": "Followup_2", "at": "2026-11-24T09:00:00Z", "outcome": "sent", "message_id": "m-2"}
    new = replace(old, follow_up_stage="Followup_2", engagement_history=[*old.engagement_history, sent], version=4)
    events = events_for_change(old, new, POLICY)
    assert [event.type for event in events] == [EventType.FOLLOW_UP_SENT, EventType.SEQUENCE_FINISHED]
    assert events[0].body()["message_id"] == "m-2" and events[0].body()["stage"] == "Followup_2"
    assert events[1].body()["reason"] == "sequence_complete"


def test_a_redelivered_change_has_the_same_idempotency_keys():
    old = _sent_lead()
    new = replace(old, response_status="Unsubscribed", suppressed=True, version=4)
    first = [event.idempotency_key for event in events_for_change(old, new, POLICY)]
    again = [event.idempotency_key for event in events_for_change(old, new, POLICY)]
    assert first == again and len(set(first)) == len(first) == 2
    assert _types(old, new) == ["LeadSuppressed", "SequenceFinished"]


def test_responses_skips_and_quiet_changes():
    old = _sent_lead()
    assert _types(old, replace(old, response_status="Interested", version=4)) == ["LeadResponded", "SequenceFinished"]
    skipped = {"stage": "Followup_2", "at": "t", "outcome": "stopped", "reason": "responded"}
    assert _types(old, replace(old, engagement_history=[*old.engagement_history, skipped])) == ["FollowUpSkipped"]
    assert _types(old, replace(old, name="Ada King", version=4)) == []
    assert _types(old, None) == []
    assert _types(None, old) == []  # a new lead: what it arrives with happened elsewhere
    assert _types(None, replace(old, response_status="Interested")) == []


def test_every_event_matches_its_documented_schema():
    import json
    from pathlib import Path

    import jsonschema  # type: ignore[import-untyped]

    schemas = Path(__file__).resolve().parents[2] / "docs" / "events"
    old = _sent_lead(email="ada@example.com")
    at = "2026-11-24T09:00:00Z"
    sent = {"stage": "Followup_2", "at": at, "outcome": "sent", "message_id": "m", "generator": "ai"}
    skipped = {"stage": "Followup_2", "at": "2026-11-24T09:00:00Z", "outcome": "stopped", "reason": "suppressed"}
    changes = [
        replace(old, follow_up_stage="Followup_2", engagement_history=[*old.engagement_history, sent], version=4),
        replace(old, engagement_history=[*old.engagement_history, skipped], response_status="Converted", version=4),
        replace(old, response_status="Complained", suppressed=True, version=4),
        replace(old, suppressed=True, version=4),
    ]
    seen = set()
    for new in changes:
        for event in events_for_change(old, new, POLICY):
            schema = json.loads((schemas / f"{event.type.value}.json").read_text())
            jsonschema.validate(event.body(), schema)
            seen.add(event.type)
    assert seen == set(EventType)


_TEXT = st.one_of(st.none(), st.just(""), st.sampled_from(["Followup_1", "Followup_2", "No Response", "Bounced", "x"]))
_TIMES = st.one_of(st.none(), st.just(""), st.sampled_from(["2026-11-17T09:00:00Z", "2026-11-17T09:00:00.000000Z"]))


@given(
    stage=_TEXT,
    status=_TEXT,
    eligible=st.booleans(),
    contacted=_TIMES,
    record=st.dictionaries(
        st.sampled_from(MAPPING.pushed_fields), st.one_of(_TEXT, _TIMES, st.booleans(), st.integers()), max_size=5
    ),
)
def test_a_pushed_record_needs_no_second_push(
    stage: str | None, status: str | None, eligible: bool, contacted: str | None, record: dict[str, object]
):
    # Whatever the record held, once the fields to push are written, nothing differs any more
    lead = replace(
        _sent_lead(),
        follow_up_stage=stage,
        response_status=status,
        eligible_for_reengagement=eligible,
        last_contacted=contacted,
    )
    written = {**record, **push_fields(MAPPING, lead, record)}
    assert push_fields(MAPPING, lead, written) == {}


def test_push_never_writes_a_response_or_a_first_contact_reengage_did_not_set():
    # Given a lead whose response status reengage never set, and a record the CRM stopped
    record = {"Response_Status": "Replied", "Last_Contacted": "2026-11-20T10:00:00.000Z"}
    lead = _sent_lead()
    # Then a push leaves the CRM's stop alone
    assert "Response_Status" not in push_fields(MAPPING, lead, record)
    assert "Response_Status" not in push_fields(MAPPING, lead, None)
    # And before reengage's first follow-up, the last contact is the CRM's
    first_contact = replace(lead, follow_up_stage=None, engagement_history=[])
    assert "Last_Contacted" not in push_fields(MAPPING, first_contact, None)
    # And a stop the CRM told reengage is not echoed back as reengage's
    learned = {"outcome": "response", "status": "Converted", "source": "import", "at": "2026-11-18T09:00:00Z"}
    converted = replace(lead, response_status="Converted", engagement_history=[*lead.engagement_history, learned])
    assert "Response_Status" not in push_fields(MAPPING, converted, {"Response_Status": "Replied"})
    # But a response reengage recorded (a reply, an unsubscribe, a bounce, a complaint) is pushed
    reply = {"outcome": "response", "status": "Interested", "source": "reply", "at": "2026-11-18T09:00:00Z"}
    interested = replace(lead, response_status="Interested", engagement_history=[*lead.engagement_history, reply])
    assert push_fields(MAPPING, interested, record)["Response_Status"] == "Interested"


def test_a_stream_push_writes_only_what_reengage_changed():
    old = _sent_lead()
    sent = {"stage": "Followup_2", "at": "2026-11-24T09:00:00.000000Z", "outcome": "sent", "generator": "ai"}
    new = replace(
        old,
        follow_up_stage="Followup_2",
        last_contacted="2026-11-24T09:00:00.000000Z",
        engagement_history=[*old.engagement_history, sent],
    )
    pushed = set(push_fields(MAPPING, new, None, previous=old))
    assert pushed == {"Follow_Up_Stage", "Last_Contacted", "Reengage_History"}
    assert push_fields(MAPPING, replace(old, schedule_state="deferred"), None, previous=old) == {}


def test_last_contacted_is_compared_at_airtables_precision():
    lead = _sent_lead(last_contacted="2026-11-17T09:00:00.466611Z")
    lead.engagement_history[0]["at"] = "2026-11-17T09:00:00.466611Z"
    # Airtable keeps milliseconds of a date-time, and the day of a date
    assert "Last_Contacted" not in push_fields(MAPPING, lead, {"Last_Contacted": "2026-11-17T09:00:00.466Z"})
    assert "Last_Contacted" not in push_fields(MAPPING, lead, {"Last_Contacted": "2026-11-17"})
    assert "Last_Contacted" in push_fields(MAPPING, lead, {"Last_Contacted": "2026-11-17T09:00:00.467Z"})
    # And a pull of the truncated value changes nothing and notes nothing
    lead = replace(lead, company="Analytical")
    POLICY.reschedule(lead)
    pulled, notes, changed = _pulled(lead, Last_Contacted="2026-11-17T09:00:00.466Z", Follow_Up_Stage="Followup_1")
    assert (notes, changed, pulled.last_contacted) == ([], False, "2026-11-17T09:00:00.466611Z")
    _, notes, changed = _pulled(lead, Last_Contacted="2026-11-17", Follow_Up_Stage="Followup_1")
    assert (notes, changed) == ([], False)


def test_an_unknown_stage_on_an_existing_lead_is_stored_as_given_and_never_eligible():
    lead, notes, changed = _pulled(_sent_lead(follow_up_stage=None), Follow_Up_Stage="Followup_9")
    assert changed and lead.follow_up_stage == "Followup_9"
    assert not POLICY.standing(lead).due and lead.schedule_state is None
    assert [note for note in notes if "follow_up_stage" in note or "Followup_9" in note] == [
        next(note for note in notes if "stored as given" in note)
    ]
    assert not any(": kept " in note for note in notes)  # nothing to write back: the cell stays


def test_follow_up_skipped_documents_exactly_the_skips_that_emit_it():
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    schema = json.loads((root / "docs" / "events" / "FollowUpSkipped.json").read_text())
    # The skips that leave a history entry (and so an event): a stop, an SES refusal, a send in doubt
    old = _sent_lead()
    emitted = set()
    for entry in (
        {"outcome": "stopped", "reason": "suppressed"},
        {"outcome": "stopped", "reason": "address_already_contacted"},
        {"outcome": "rejected", "error": "SES said no"},
        {"outcome": "possibly_sent", "note": "not re-sent"},
    ):
        new = replace(old, engagement_history=[*old.engagement_history, {"stage": "Followup_2", "at": "t", **entry}])
        emitted |= {
            e.body()["reason"] for e in events_for_change(old, new, POLICY) if e.type.value == "FollowUpSkipped"
        }
    assert set(schema["properties"]["reason"]["enum"]) == emitted
    # And neither the schema nor the README promise the event for a skip that gives none
    readme_row = next(line for line in (root / "README.md").read_text().splitlines() if "| `FollowUpSkipped`" in line)
    for promise in (schema["description"], readme_row):
        assert "the lead responded meanwhile" not in promise and "follow-up was not sent |" not in promise


@pytest.mark.parametrize("event", [None, [], "x", {"Records": "x"}, {"Records": None}, {"Records": {"a": 1}}])
def test_sync_function_rejects_an_event_of_the_wrong_shape_without_raising(event: object) -> None:
    from tests.conftest import FakeLambdaContext, load_handler

    assert load_handler("sync").lambda_handler(event, FakeLambdaContext()) == {"rejected": 1}


def test_stream_records_of_the_wrong_shape_are_counted_not_raised() -> None:
    from reengage.adapters.leads_table import read_lead
    from reengage.services.crm_sync import lead_changes

    records: list[Any] = [None, 1, "x", {"dynamodb": []}, {"dynamodb": {"NewImage": ["x"], "OldImage": 3}}]
    outcome = lead_changes(records, read_lead, FollowUpPolicy(), None, None)
    assert (outcome.malformed, outcome.events) == (4, 0)
