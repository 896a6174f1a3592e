"""The bytes SES is handed: structured headers exactly as mail providers read them (RFC 2369, 8058, 5322).

Python's parser decodes RFC 2047 encoded words back, so a re-parsed message hides the bug; these
tests look at the raw bytes only.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from reengage.adapters.ses_mailer import SesMailer
from reengage.domain.messages import OutgoingEmail
from reengage.domain.unsubscribe import UnsubscribeLinks
from reengage.ports import SendNotAttemptedError
from tests.conftest import NOW

# A real Function URL is 60+ characters before the query; the header is then far over 78.
FUNCTION_URL = "https://abcdefghijklmnopqrstuvwxyz234567abcd.lambda-url.eu-west-1.on.aws/"
MESSAGE_ID = "<rg.bGVhZC0wMDEtd2l0aC1hLXJhdGhlci1sb25nLWlk.Followup_1.9f8e7d6c5b4a@mail.example.com>"


class CapturingSes:
    """Records what `send_email` is given, as SES would receive it."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def send_email(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(kwargs)
        return {"MessageId": "ses-1"}


def sent_bytes(email: OutgoingEmail, **mailer: str) -> bytes:
    ses = CapturingSes()
    SesMailer(ses, "followups@mail.example.com", "Sam Seller", **mailer).send(email)
    raw = ses.calls[0]["Content"]["Raw"]["Data"]
    assert isinstance(raw, bytes)
    return raw


def header_block(raw: bytes) -> bytes:
    return re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]


def test_one_click_headers_go_out_verbatim_on_one_line():
    # Given a signed link as long as a real one and a mailto alternative
    url = UnsubscribeLinks(FUNCTION_URL, key=lambda: b"k" * 48).url("lead-001-with-a-rather-long-id", NOW)
    email = OutgoingEmail(
        "ana@example.com", "Ana Lima", "Following up", "text", "<p>html</p>", message_id=MESSAGE_ID, unsubscribe_url=url
    )
    # When the mailer hands the message to SES
    head = header_block(sent_bytes(email, reply_to="replies@in.example.com", unsubscribe_mailto="unsub@example.com"))
    # Then each structured header is one physical line, the value exactly as written, never encoded
    assert b"=?" not in head
    expected = f"List-Unsubscribe: <{url}>, <mailto:unsub@example.com?subject=unsubscribe>".encode("ascii")
    assert re.search(rb"(?m)^" + re.escape(expected) + rb"\r?$", head), head.decode()
    assert re.search(rb"(?m)^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r?$", head)
    assert re.search(rb"(?m)^Message-ID: " + re.escape(MESSAGE_ID.encode()) + rb"\r?$", head)
    assert re.search(rb"(?m)^Reply-To: replies@in\.example\.com\r?$", head)
    assert len(expected) > 78  # the case the default policy folds into encoded words


def test_other_headers_still_fold_and_encode_as_mime_requires():
    # Given a non-ASCII display name and subject (these must be RFC 2047 encoded to be valid)
    email = OutgoingEmail("ana@example.com", "Ana Lîma", "Suivi — votre équipe", "text", "<p>html</p>")
    head = header_block(sent_bytes(email))
    # Then they are encoded, and every header line stays ASCII within 78 characters
    assert re.search(rb"(?m)^Subject: .*=\?utf-8\?", head)
    assert head.isascii()
    assert all(len(line) <= 78 for line in head.splitlines())


def test_a_structured_header_that_cannot_be_written_verbatim_is_not_sent():
    # Given an unsubscribe link carrying raw non-ASCII (a broken link builder)
    email = OutgoingEmail("ana@example.com", "Ana", "s", "t", "<p>h</p>", unsubscribe_url=FUNCTION_URL + "?lead=é")
    ses = CapturingSes()
    # Then SES is never called and the error says which header
    with pytest.raises(SendNotAttemptedError, match="List-Unsubscribe cannot be written verbatim"):
        SesMailer(ses, "followups@mail.example.com", "Sam").send(email)
    assert ses.calls == []
