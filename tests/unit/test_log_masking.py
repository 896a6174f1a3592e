"""Masking by construction: every address form the import accepts, in any context, never reaches a log
line in full, whichever handler writes it."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import string
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reengage.domain.leads import email_problem
from reengage.observability import logger, mask_addresses
from reengage.services.scheduler import CampaignRequest, run_scheduler
from tests.conftest import EVENTS, NOW, FakeLambdaContext, load_event
from tests.fakes import InMemoryTables, RecordingQueue
from tests.unit import test_handler_fuzz as fuzz
from tests.unit.test_scheduler import SETTINGS, lead

# The issue's addresses and every character class the import's address check accepts.
ADDRESSES = [
    "kai@bücher.de",
    "z@例え.jp",
    "{weird}@example.com",
    "o'brien+tag@example.ie",
    "a.b-c_d@sub.xn--bcher-kva.de",
    "x!#$%&*/=?^`|~@example.org",
    "ana.lima@bücher.example.com",
    "q@пример.рф",
    "1@[192.0.2.1]",  # not accepted by the import, masked all the same
    '"kai müller"@bücher.de',  # neither: a quoted local part
]
_ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
_LABELS = ["example", "bücher", "例え", "пример", "xn--bcher-kva", "mail", "sub-domain", "münchen"]
_TLDS = ["com", "de", "jp", "io", "рф", "xn--p1ai"]


@st.composite
def accepted_addresses(draw: st.DrawFn) -> str:
    """Addresses `reengage import` accepts (checked by its own email_problem)."""
    atoms = draw(st.lists(st.text(_ATEXT, min_size=1, max_size=12), min_size=1, max_size=3))
    labels = draw(st.lists(st.sampled_from(_LABELS), min_size=1, max_size=3))
    address = f"{'.'.join(atoms)}@{'.'.join(labels)}.{draw(st.sampled_from(_TLDS))}"
    if email_problem(address) is not None:
        return "ana@example.com"
    return address


CONTEXTS = st.sampled_from(
    ["{}", "to {}", "<{}>", "mailto:{}", '"{}"', "({})", "{}.", "{},x@y.de", "To: Ana <{}>; cc", "x={}&y=1"]
)


def formatted(message: str, **extra: Any) -> str:
    """The log line CloudWatch would get."""
    record = logging.LogRecord("reengage", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return str(logger.registered_formatter.format(record))


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_issues_addresses_are_masked_in_every_field(address: str) -> None:
    line = formatted(f"sent to {address}", to=address, nested={"list": [address, {"k": f"<{address}>"}]})
    assert address not in line
    assert json.loads(line)["to"] == mask_addresses(address) != address
    assert "***" in line


@settings(max_examples=fuzz.EXAMPLES * 4, deadline=None, derandomize=fuzz.FUZZ.derandomize)
@given(accepted_addresses(), CONTEXTS)
def test_any_accepted_address_in_any_context_is_masked(address: str, context: str) -> None:
    text = context.format(address)
    assert address not in mask_addresses(text)
    assert address not in formatted(text, to=address)


def test_text_without_addresses_is_left_alone() -> None:
    for text in ["@home", "x @ y", "a@", "price: 5 @ 10", "no at sign"]:
        assert mask_addresses(text) == text


class Lines(logging.Handler):
    """What the handlers log, through the same formatter as in Lambda."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logger.registered_formatter)
        self.text = io.StringIO()

    def emit(self, record: logging.LogRecord) -> None:
        self.text.write(self.format(record) + "\n")


def captured(run: Callable[[], Any]) -> str:
    lines = Lines()
    root = logging.getLogger("reengage")
    root.addHandler(lines)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            run()
    finally:
        root.removeHandler(lines)
    return lines.text.getvalue() + out.getvalue()


def sns(message: dict[str, Any]) -> dict[str, Any]:
    event = load_event("ses-bounce")
    event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    return event


def handler_events(address: str) -> list[tuple[str, Any]]:
    """(function, event) pairs that put `address` in front of each handler, valid and malformed."""
    bounce = json.loads(load_event("ses-bounce")["Records"][0]["Sns"]["Message"])
    text = json.dumps(bounce).replace("emma.watson@healthtechlabs.io", address.replace('"', '\\"'))
    stream = load_event("stream-lead-changes")
    stream["Records"][0]["dynamodb"]["NewImage"]["email"] = {"S": address}
    broken_stream = load_event("stream-lead-changes")
    broken_stream["Records"][0]["eventID"] = address
    broken_stream["Records"][0]["dynamodb"]["NewImage"] = address
    unsubscribe = load_event("unsubscribe-one-click")
    unsubscribe["queryStringParameters"] = {"lead": address, "token": "1.abc"}
    return [
        ("feedback", sns(json.loads(text))),
        ("feedback", sns({"eventType": "Bounce", "mail": address})),
        ("counters", stream),
        ("counters", broken_stream),
        ("unsubscribe", unsubscribe),
        ("unsubscribe", {**unsubscribe, "requestContext": address}),
        ("cleanup", {"days": address}),
        ("scheduler", {"days_since_contact": address}),
        ("stats", {"detail": address}),
        ("sender", {"Records": [{"messageId": address, "body": json.dumps({"lead_id": address})}]}),
        ("reply", {"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": address}}}]}),
    ]


@pytest.mark.parametrize("address", ADDRESSES)
def test_no_handler_logs_an_address_in_full(address: str) -> None:
    # Given a lead with the address, due and claimed, and inbound mail from it
    store = InMemoryTables([lead(1, email=address)])
    queue = RecordingQueue()
    logs = captured(lambda: run_scheduler(store.stores, queue, CampaignRequest(7), SETTINGS, NOW))
    sender = fuzz.deployed("sender")
    sender._deployment = lambda: (
        fuzz.FollowUpSender(store.stores, fuzz.RecordingMailer(), fuzz.template_writer(), SETTINGS, clock=lambda: NOW),
        lambda handle, seconds: None,
    )
    sqs = load_event("sqs-follow-ups")
    sqs["Records"] = sqs["Records"][:1]
    # When every handler sees it: the sender mails it, replies and events name it, malformed input carries it
    logs += captured(lambda: sender.lambda_handler(sqs, FakeLambdaContext()))
    if email_problem(address) is None:  # an address the import accepts is mailed, and the recipient logged
        assert "follow-up sent" in logs and "***@" in logs
    raw = (EVENTS / "inbound-reply.eml").read_text().replace("emma.watson@healthtechlabs.io", address)
    reply = fuzz.deployed("reply")
    reply._deployment = lambda: (SETTINGS, store.stores, fuzz.classify, _Mail(raw.encode()))
    logs += captured(lambda: reply.lambda_handler(load_event("s3-inbound-reply"), FakeLambdaContext()))
    for function, event in handler_events(address):
        handler = fuzz.deployed(function).lambda_handler
        logs += captured(partial(handler, event, FakeLambdaContext()))
    # Then no log line holds it in full
    assert address not in logs
    assert address not in logs.encode().decode("unicode_escape", errors="ignore")


class _Mail:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        return self.raw


@pytest.mark.parametrize("address", ADDRESSES)
def test_an_address_inside_a_rejected_json_body_is_masked_after_unescaping(address: str) -> None:
    from reengage.observability import reject

    body = json.dumps({"lead_id": address})  # as SQS carries it: non-ASCII as \\u escapes
    logs = captured(lambda: reject("SQS record", "not a follow-up request", body=body, cut=body[:-3]))
    lines = [line for line in logs.splitlines() if "input rejected" in line]
    assert lines
    for line in lines:
        # Read the line back as CloudWatch Logs Insights would: escapes decoded
        readable = line.encode().decode("unicode_escape", errors="ignore") if "\\u" in line else line
        assert address not in readable and address.split("@")[0] + "@" not in readable
