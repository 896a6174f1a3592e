"""Every handler is total over its input: fuzzed from its events/ fixtures, it returns (or reports a
counted rejection: the InvalidEvents metric and one log line), and never raises on malformed input.

Each function runs its real handler module with in-memory stores (its `_deployment` replaced).
The number of examples is bounded for `make test` (REENGAGE_FUZZ_EXAMPLES, default 25 per
handler); benchmarks/fuzz_handlers.py runs the long mode.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reengage.adapters.inbound_mail import MissingEmailError
from reengage.domain.replies import classify
from reengage.services.sender import FollowUpSender
from tests.conftest import EVENTS, NOW, FakeLambdaContext, load_event, load_handler
from tests.fakes import InMemoryTables, RecordingMailer, RecordingQueue, template_writer
from tests.unit.test_scheduler import SETTINGS, lead

EXAMPLES = int(os.environ.get("REENGAGE_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("REENGAGE_FUZZ_RANDOM") is None,  # reproducible in make test
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
KEY = b"fuzz-key"
JSON_MARK = "__json__"


class FakeCounters:
    def apply(self, totals: Any, days: Any, checkpoint: Any = None) -> None:
        pass

    def read(self, now: Any, days_back: int) -> tuple[dict[str, int], dict[str, int]]:
        return {}, {}


class FakeInboundMail:
    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        if key == "inbound/inbound-reply.eml":
            return (EVENTS / "inbound-reply.eml").read_bytes()
        raise MissingEmailError(f"s3://{bucket}/{key}: NoSuchKey")


def stores() -> InMemoryTables:
    return InMemoryTables([lead(1), lead(11, follow_up_stage="Followup_1")])


def deployed(function: str) -> Any:
    """The function's handler module, wired to in-memory stores."""
    module: Any = load_handler(function)
    store = stores()
    if function in ("cleanup", "feedback"):
        module._deployment = lambda: (SETTINGS, store.stores)
    elif function in ("counters", "stats"):
        module._counters = lambda: FakeCounters()
    elif function == "reply":
        module._deployment = lambda: (SETTINGS, store.stores, classify, FakeInboundMail())
    elif function == "scheduler":
        module._deployment = lambda: (SETTINGS, store.stores, RecordingQueue())
    elif function == "sender":
        sender = FollowUpSender(store.stores, RecordingMailer(), template_writer(), SETTINGS, clock=lambda: NOW)
        module._deployment = lambda: (sender, lambda handle, seconds: None)
    elif function == "unsubscribe":
        module._deployment = lambda: (SETTINGS, store.stores, lambda: KEY)
    return module


FIXTURES = {
    "cleanup": ["weekly-cleanup"],
    "counters": ["stream-lead-changes"],
    "feedback": ["ses-bounce", "ses-complaint", "ses-delivery", "ses-soft-bounce"],
    "reply": ["s3-inbound-reply"],
    "scheduler": ["scheduled", "scheduled-rule", "scheduled-dry-run"],
    "sender": ["sqs-follow-ups"],
    "stats": ["hourly-stats"],
    "unsubscribe": ["unsubscribe-one-click"],
}


def unpack(value: Any) -> Any:
    """JSON carried in strings (an SNS Message, an SQS body) opened up, so it is fuzzed too."""
    if isinstance(value, dict):
        return {key: unpack(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unpack(item) for item in value]
    if isinstance(value, str) and value[:1] in "{[":
        with contextlib.suppress(ValueError):
            return {JSON_MARK: unpack(json.loads(value))}
    return value


def pack(value: Any, depth: int = 0) -> Any:
    if depth > 20:  # only the fixture's own levels hold packed JSON; deeper is fuzz nesting, left as is
        return value
    if isinstance(value, dict):
        if set(value) == {JSON_MARK}:
            return json.dumps(pack(value[JSON_MARK], depth + 1))
        return {key: pack(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [pack(item, depth + 1) for item in value]
    return value


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if len(prefix) > 20:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def nested(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


REPLACEMENTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.just("x" * 300_000),  # oversized
    st.just("²³¹"),  # digits that are not ASCII
    st.just("ünïcødé\u202e\x00"),
    st.builds(nested, st.integers(min_value=50, max_value=1200)),  # nested
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def mutated(draw: st.DrawFn, fixture: Any) -> Any:
    """The fixture with 1-3 fields removed, nulled, retyped, oversized or nested."""
    event = copy.deepcopy(fixture)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(list(paths(event))))
        if not path:
            event = draw(REPLACEMENTS)
            continue
        parent = event
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)  # removed
        else:
            parent[path[-1]] = draw(REPLACEMENTS)
    return event


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def invoke(handler: Callable[..., Any], event: Any) -> tuple[Any, list[logging.LogRecord], str]:
    captured = Captured()
    root = logging.getLogger("reengage")
    root.addHandler(captured)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            result = handler(event, FakeLambdaContext())
    finally:
        root.removeHandler(captured)
    return result, captured.records, out.getvalue()


CASES = [(function, name) for function, names in FIXTURES.items() for name in names]


@pytest.mark.parametrize(("function", "fixture"), CASES)
def test_every_handler_is_total_over_its_input(function: str, fixture: str) -> None:
    module = deployed(function)
    original = unpack(load_event(fixture))

    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        # Given the fixture with fields removed, nulled, retyped, oversized or nested
        event = pack(data.draw(mutated(original), label="event"))
        # When the handler gets it
        result, records, stdout = invoke(module.lambda_handler, event)
        # Then it returns something Lambda can serialise, and a rejection is counted and logged
        json.dumps(result)
        rejections = [r for r in records if r.getMessage() == "input rejected"]
        assert stdout.count('"InvalidEvents"') >= len(rejections) > 0 or not rejections
        if function == "sender":
            assert result["batchItemFailures"] == []  # nothing here could succeed on a retry
        if function == "unsubscribe":
            assert result["statusCode"] in (200, 400, 403, 405)

    run()


def test_the_fixtures_themselves_are_accepted() -> None:
    for function, name in CASES:
        _, records, _ = invoke(deployed(function).lambda_handler, load_event(name))
        assert not [r for r in records if r.getMessage() == "input rejected"], (function, name)


def unsubscribe_event(**changes: Any) -> dict[str, Any]:
    event = load_event("unsubscribe-one-click")
    event.update(changes)
    return event


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (unsubscribe_event(queryStringParameters={"lead": "lead-001", "token": "1829030400.ünïcødé"}), 403),
        (unsubscribe_event(queryStringParameters={"lead": "lead-001", "token": "18290304²0.abc"}), 403),
        (unsubscribe_event(queryStringParameters={"lead": "lead-001", "token": "¹⁸²⁹.abc"}), 403),
        (unsubscribe_event(requestContext=None), 400),
        (unsubscribe_event(requestContext={"http": None}), 400),
        (unsubscribe_event(queryStringParameters=["lead"]), 400),
        (unsubscribe_event(queryStringParameters={"lead": None}), 400),
        (unsubscribe_event(body=5), 400),
        (unsubscribe_event(body="%%%", isBase64Encoded=True), 400),
        (None, 400),
        ([], 400),
    ],
)
def test_the_unsubscribe_endpoint_answers_400_or_403_to_malformed_requests(event: Any, status: int) -> None:
    result, records, stdout = invoke(deployed("unsubscribe").lambda_handler, event)
    assert result["statusCode"] == status
    if status == 400:  # a request no mail client sends: counted and logged once
        assert [r.getMessage() for r in records] == ["input rejected"] and '"InvalidEvents"' in stdout


def test_a_stream_image_with_an_attribute_of_a_type_no_lead_has_is_rejected_not_raised() -> None:
    # Found by the long fuzz run: response_status {"S": true} (no stream sends it) crashed the counters' delta
    event = load_event("stream-lead-changes")
    event["Records"][0]["dynamodb"]["NewImage"]["response_status"] = {"S": True}
    result, records, stdout = invoke(deployed("counters").lambda_handler, event)
    assert result["rejected"] == 1 and '"InvalidEvents"' in stdout
    assert [r.getMessage() for r in records].count("input rejected") == 1


def test_the_reply_handler_stops_before_it_runs_out_of_time() -> None:
    # Given an invocation with less time left than one inbound email may need
    reply = deployed("reply")
    read: list[str] = []
    reply._deployment = lambda: (SETTINGS, stores().stores, classify, _Recording(read))
    # When it gets a record, it reads nothing and asks for the whole event again (not malformed input)
    with pytest.raises(TimeoutError, match="1 inbound emails left unread"):
        reply.lambda_handler(load_event("s3-inbound-reply"), FakeLambdaContext(remaining_ms=4_000))
    assert read == []


class _Recording(FakeInboundMail):
    def __init__(self, read: list[str]) -> None:
        self.read_keys = read

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        self.read_keys.append(key)
        return super().read(bucket, key, max_bytes)


@pytest.mark.parametrize("message", [None, "null", "[1, 2]", [], {"eventType": "Bounce", "mail": None}, "{"])
def test_an_sns_record_that_is_not_an_ses_event_is_a_counted_rejection(message: Any) -> None:
    event = load_event("ses-bounce")
    event["Records"][0]["Sns"]["Message"] = message
    result, records, stdout = invoke(deployed("feedback").lambda_handler, event)
    assert result == {"malformed": 1} and '"InvalidEvents"' in stdout
    assert [r.getMessage() for r in records] == ["input rejected"]


@pytest.mark.parametrize(
    "record",
    [{}, {"s3": None}, {"s3": {"bucket": {}, "object": {"key": "k"}}}, {"s3": {"bucket": {"name": "b"}}}, None, 5],
)
def test_an_s3_record_without_its_keys_is_rejected_not_raised(record: Any) -> None:
    result, records, stdout = invoke(deployed("reply").lambda_handler, {"Records": [record]})
    assert result == {"invalid_record": 1} and '"InvalidEvents"' in stdout
    assert [r.getMessage() for r in records] == ["input rejected"]


def test_a_missing_s3_object_is_not_retried() -> None:
    event = load_event("s3-inbound-reply")
    event["Records"][0]["s3"]["object"]["key"] = "inbound/gone.eml"
    result, records, stdout = invoke(deployed("reply").lambda_handler, event)
    assert result == {"missing_object": 1} and '"InvalidEvents"' in stdout
    assert [r.getMessage() for r in records] == ["input rejected"]
