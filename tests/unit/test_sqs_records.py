"""The sender's hand-written SQS record check and batch response, each against what it replaced (the
oracles): the pydantic model and Powertools' BatchProcessor."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, Json, ValidationError

from reengage.adapters.sqs_records import InvalidRecordError, partial_batch_response, read_follow_up_record
from reengage.domain.leads import FollowUpStage
from reengage.ports import FollowUpRequest, PoisonMessageError, TransientError
from tests.conftest import load_event


class FollowUpBody(BaseModel):  # the model SenderFunction used until issue 13
    lead_id: str = Field(min_length=1, max_length=2048)
    stage: FollowUpStage
    campaign_id: str = Field(default="", max_length=128)


class FollowUpRecord(SqsRecordModel):
    body: Json[FollowUpBody]


RECORD = load_event("sqs-follow-ups")["Records"][0]


def with_body(body: Any) -> dict[str, Any]:
    record = copy.deepcopy(RECORD)
    record["body"] = body
    return record


def oracle(record: dict[str, Any]) -> FollowUpRequest | None:
    """The pydantic model the sender used to check with, plus one rule it missed: DynamoDB limits a key
    to 2,048 bytes (not characters), and a longer id fails every read (retried to the dead-letter queue)."""
    try:
        body = FollowUpRecord.model_validate(record).body
    except ValidationError:
        return None
    if len(body.lead_id.encode("utf-8", "surrogatepass")) > 2048:
        return None
    return FollowUpRequest(body.lead_id, body.stage, body.campaign_id)


def checked(record: Any) -> FollowUpRequest | None:
    try:
        return read_follow_up_record(record).request
    except InvalidRecordError:
        return None


TEXT = st.one_of(
    st.sampled_from(["", "x", "Followup_1", "Followup_2", "followup_1", "Followup_3", "ünï\u202e\x00", "\ud800"]),
    st.integers(min_value=0, max_value=2100).map(lambda n: "a" * n),
    st.sampled_from([127, 128, 129, 2047, 2048, 2049]).map(lambda n: "é" * n),
    st.text(max_size=20),
)
VALUE = st.one_of(TEXT, st.none(), st.booleans(), st.integers(), st.floats(), st.lists(st.integers(), max_size=2))
BODY = st.dictionaries(st.sampled_from(["lead_id", "stage", "campaign_id", "other"]), VALUE, max_size=4)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(BODY)
def test_a_body_is_accepted_exactly_when_the_pydantic_model_accepts_it(body: dict[str, Any]) -> None:
    # Given a body built from the fields' boundaries, wrong types, unknown stages and extra keys
    record = with_body(json.dumps(body))
    # Then the hand-written check and the old model agree on the verdict and on the request
    assert checked(record) == oracle(record)


BOUNDARIES = [
    {"lead_id": "é" * length, "stage": "Followup_1", "campaign_id": "c" * campaign}
    for length in (0, 1, 2048, 2049)
    for campaign in (0, 128, 129)
]


@pytest.mark.parametrize("body", BOUNDARIES)
def test_the_length_limits_are_the_models(body: dict[str, Any]) -> None:
    record = with_body(json.dumps(body))
    assert checked(record) == oracle(record)


@pytest.mark.parametrize(
    "body",
    [
        '{"lead_id": "lead-1", "stage": "Followup_1"}',  # campaign_id defaults to ""
        ' {"lead_id": "lead-1", "stage": "Followup_2", "campaign_id": "c", "lead_id": "lead-2"} ',
        '{"lead_id": "lead-1", "stage": "Followup_1"} junk',
        '{"lead_id": "lead-1", "stage": "Followup_1",}',
        '{"lead_id": "\\ud800", "stage": "Followup_1"}',  # a lone surrogate: not valid Unicode
        '{"lead_id": "lead-1", "stage": "Followup_1", "campaign_id": NaN}',
        '["lead-1", "Followup_1"]',
        "null",
        "",
        "[" * 5000,
        b'{"lead_id": "lead-1", "stage": "Followup_1"}',
        None,
        5,
    ],
)
def test_bodies_that_are_not_plain_json_objects_get_the_same_verdict(body: Any) -> None:
    record = with_body(body)
    assert checked(record) == oracle(record)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"messageId": None}, "messageId: not a string"),
        ({"receiptHandle": 5}, "receiptHandle: not a string"),
        ({"eventSource": "aws:sns"}, "eventSource: not aws:sqs"),
        ({"attributes": {"ApproximateReceiveCount": "²"}}, "attributes.ApproximateReceiveCount: not a count"),
        ({"attributes": None}, "attributes.ApproximateReceiveCount: not a count"),
        ({"attributes": {"ApproximateReceiveCount": "9" * 5000}}, "attributes.ApproximateReceiveCount: not a count"),
        ({"body": '{"lead_id": "", "stage": "Followup_7"}'}, "body.lead_id: 0 characters, not 1 to 2048"),
    ],
)
def test_the_envelope_fields_the_sender_reads_are_checked(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidRecordError) as raised:
        read_follow_up_record({**RECORD, **change})
    assert problem in str(raised.value)


def test_a_record_gives_the_request_and_what_the_backoff_and_the_batch_response_need() -> None:
    queued = read_follow_up_record({**RECORD, "attributes": {**RECORD["attributes"], "ApproximateReceiveCount": "3"}})
    assert queued.request == FollowUpRequest("lead-001", FollowUpStage.FOLLOWUP_1, "20261124T090000-sample")
    assert (queued.message_id, queued.receipt_handle, queued.receive_count) == (
        RECORD["messageId"],
        RECORD["receiptHandle"],
        3,
    )


@pytest.mark.parametrize("record", [None, [], "x", 5])
def test_a_record_that_is_not_an_object_is_invalid(record: Any) -> None:
    with pytest.raises(InvalidRecordError, match="not an object"):
        read_follow_up_record(record)


FAILURES = st.sampled_from([None, TransientError, PoisonMessageError, KeyError, RuntimeError, ValueError])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(FAILURES, min_size=1, max_size=10))
def test_the_batch_response_is_the_one_powertools_batch_processor_gives(failures: list[Any]) -> None:
    # Given a batch where the handler raises (or not) for each record in turn
    records = [{**RECORD, "messageId": f"message-{n}"} for n in range(len(failures))]
    outcome = {record["messageId"]: failure for record, failure in zip(records, failures, strict=True)}

    def act(message_id: str) -> None:
        if failure := outcome[message_id]:
            raise failure("failed")

    # When both answer it
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    expected = process_partial_response(
        event={"Records": records}, record_handler=lambda record: act(record.message_id), processor=processor
    )
    ours = partial_batch_response([read_follow_up_record(r) for r in records], lambda q: act(q.message_id))
    # Then the same records come back, in the same order
    assert ours == expected
