"""Replies you can trust: forged thread headers and unauthenticated senders change nothing, refusals
suppress, autoresponders in any language are ignored, and hostile MIME is refused before work."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reengage.domain.leads import FollowUpPolicy, FollowUpStage
from reengage.domain.replies import (
    MAX_REFERENCES,
    ReceiptVerdicts,
    UnreadableReplyError,
    classify,
    read_reply,
    verdicts_from_receipt,
)
from reengage.ports import LedgerRecord
from reengage.services.responses import handle_reply
from reengage.services.scheduler import CampaignRequest, run_scheduler
from reengage.services.sender import SENT, FollowUpSender
from tests.conftest import EVENTS, NOW
from tests.fakes import InMemoryTables, RecordingMailer, RecordingQueue, template_writer
from tests.unit.test_scheduler import SETTINGS, lead

KEY = b"the-link-signing-key"


def fuzz_examples() -> int:
    return int(os.environ.get("REENGAGE_FUZZ_EXAMPLES", "25"))


SES_PASS = (
    "Authentication-Results: amazonses.com;\r\n"
    " spf=pass (spfCheck: domain of example.com designates 192.0.2.1 as permitted sender)"
    " client-ip=192.0.2.1; envelope-from=person1@example.com; smtp.mailfrom=person1@example.com;\r\n"
    " dkim=pass header.i=@example.com;\r\n"
    " dmarc=pass header.from=example.com;\r\n"
)


def sent_store() -> tuple[InMemoryTables, str]:
    """lead-001 (person1@example.com) got Followup_1; returns the store and our Message-ID."""
    store = InMemoryTables([lead(1)])
    queue = RecordingQueue()
    run_scheduler(store.stores, queue, CampaignRequest(7), SETTINGS, NOW)
    mailer = RecordingMailer()
    sender = FollowUpSender(store.stores, mailer, template_writer(), SETTINGS, clock=lambda: NOW, reply_key=lambda: KEY)
    assert sender.send(queue.messages[0]).kind == SENT
    return store, mailer.sent[0].message_id


def mail(
    body: str = "Let's talk next week.",
    sender: str = "person1@example.com",
    headers: str = "",
    subject: str = "Re: a quick idea",
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    return (
        f"{headers}From: {sender}\r\nTo: replies@inbound.example.com\r\nSubject: {subject}\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n{body}\r\n"
    ).encode()


def reply(store: InMemoryTables, raw: bytes) -> str:
    return handle_reply(raw, store.stores, NOW, FollowUpPolicy(), classify, KEY)


def test_a_genuine_message_id_matches_by_thread_from_any_address() -> None:
    # Given a follow-up whose Message-ID carries the HMAC of its send
    store, own_id = sent_store()
    assert own_id.startswith("<rg.lead-001.Followup_1.")
    # When a reply quotes it, even from a forwarding address with no SES verdicts
    outcome = reply(store, mail(sender="assistant@elsewhere.example", headers=f"In-Reply-To: {own_id}\r\n"))
    # Then it is the lead's reply
    assert outcome == "reply_interested"
    assert store.leads["lead-001"].engagement_history[-1]["matched_by"] == "thread"


@pytest.mark.parametrize(
    "forged",
    [
        "<rg.lead-001.Followup_1.anything@x.example>",  # the attack: any nonce
        "<rg.lead-001.Followup_1.00000000000000000000000000000000@example.com>",
        "<rg.lead-001.Followup_2.{mac}@example.com>",  # a real MAC moved to a stage never sent
        "<rg.lead-001.Followup_1.{mac}x@example.com>",
        "<rg.lead-001.Followup_1.{MAC}@example.com>",  # upper case is another string
    ],
)
def test_a_forged_message_id_matches_nothing(forged: str) -> None:
    store, own_id = sent_store()
    mac = own_id.split(".")[3].split("@")[0]
    forged = forged.format(mac=mac, MAC=mac.upper())
    # When a stranger quotes a made-up id for the lead (no SES verdicts for their address either)
    outcome = reply(store, mail("No thanks, not interested", "stranger@evil.example", f"In-Reply-To: {forged}\r\n"))
    # Then nothing about the lead changes
    assert outcome == "unauthenticated_sender"
    assert store.leads["lead-001"].response_status == "No Response"


def test_a_message_id_signed_with_another_key_matches_nothing() -> None:
    store, own_id = sent_store()
    outcome = handle_reply(
        mail(headers=f"In-Reply-To: {own_id}\r\n"), store.stores, NOW, FollowUpPolicy(), classify, b"other-key"
    )
    assert outcome == "unauthenticated_sender"
    assert store.leads["lead-001"].response_status == "No Response"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (SES_PASS, "reply_interested"),
        ("", "unauthenticated_sender"),  # no verdicts at all
        # A verdict that came with the email (below SES's own, or with another authserv-id)
        ("Authentication-Results: evil.example; spf=pass smtp.mailfrom=person1@example.com; dmarc=pass\r\n", "u"),
        ("Received: by x\r\n" + SES_PASS.replace("amazonses.com;", "amazonses.com.evil;"), "u"),
        (SES_PASS.replace("dmarc=pass", "dmarc=fail"), "unauthenticated_sender"),
        # SPF passed for the attacker's own domain, DKIM none, DMARC none: not the From domain's
        (
            "Authentication-Results: amazonses.com; spf=pass smtp.mailfrom=bounce@evil.example;"
            " dkim=none; dmarc=none header.from=example.com\r\n",
            "u",
        ),
        (
            "Authentication-Results: amazonses.com; spf=fail smtp.mailfrom=person1@example.com;"
            " dkim=pass header.i=@mail.example.com; dmarc=none header.from=example.com\r\n",
            "reply_interested",  # DKIM passed for a subdomain of the From domain
        ),
        # DMARC passed, but for another From domain than the address we read (display-name tricks)
        (
            "Authentication-Results: amazonses.com; spf=pass smtp.mailfrom=attacker@evil.example;"
            " dkim=pass header.i=@evil.example; dmarc=pass header.from=evil.example\r\n",
            "u",
        ),
        # SPF passed for a public suffix: no organizational domain, never aligned
        (
            "Authentication-Results: amazonses.com; spf=pass smtp.mailfrom=x@com;"
            " dkim=none; dmarc=none header.from=example.com\r\n",
            "u",
        ),
    ],
)
def test_sender_address_matching_requires_ses_verdicts(headers: str, expected: str) -> None:
    store, _ = sent_store()
    outcome = reply(store, mail(headers=headers))
    assert outcome == (expected if expected != "u" else "unauthenticated_sender")
    assert (store.leads["lead-001"].response_status == "Interested") == (expected == "reply_interested")


def test_a_forged_ses_header_below_the_real_one_does_not_count() -> None:
    store, _ = sent_store()
    real = "Authentication-Results: amazonses.com; spf=fail; dkim=none; dmarc=none\r\n"
    assert reply(store, mail(headers=real + SES_PASS)) == "unauthenticated_sender"


def test_verdicts_from_a_receipt_notification() -> None:
    receipt = {"spfVerdict": {"status": "PASS"}, "dkimVerdict": {"status": "FAIL"}, "dmarcVerdict": {"status": "GRAY"}}
    assert verdicts_from_receipt(receipt).authenticated
    assert not verdicts_from_receipt({**receipt, "dmarcVerdict": {"status": "FAIL"}}).authenticated
    assert not verdicts_from_receipt({"spfVerdict": None}).authenticated
    store, _ = sent_store()
    outcome = handle_reply(mail(), store.stores, NOW, FollowUpPolicy(), classify, KEY, verdicts_from_receipt(receipt))
    assert outcome == "reply_interested"
    assert not ReceiptVerdicts().authenticated


def test_an_html_only_refusal_is_rejected_and_suppresses_the_address() -> None:
    store, own_id = sent_store()
    body = "<html><body><div>No thanks, remove me</div><blockquote>Let's talk? tell me more</blockquote></body></html>"
    raw = mail(body, headers=f"In-Reply-To: {own_id}\r\n", content_type="text/html; charset=utf-8")
    assert reply(store, raw) == "reply_rejected"
    assert store.leads["lead-001"].suppressed and store.is_suppressed("PERSON1@example.com")


@pytest.mark.parametrize(
    "text", ["Please unsubscribe me.", "Stop emailing me", "Remove me from your list", "Do not email me again"]
)
def test_refusals_suppress_the_address(text: str) -> None:
    store, own_id = sent_store()
    assert reply(store, mail(text, headers=f"In-Reply-To: {own_id}\r\n")) == "reply_rejected"
    assert store.is_suppressed("person1@example.com")


def test_a_plain_no_does_not_suppress() -> None:
    store, own_id = sent_store()
    assert reply(store, mail("Not interested right now.", headers=f"In-Reply-To: {own_id}\r\n")) == "reply_rejected"
    assert not store.is_suppressed("person1@example.com")


@pytest.mark.parametrize(
    "subject",
    [
        "Re: One more idea [Out of Office]",
        "Automatic reply: One more idea",
        "Abwesenheitsnotiz: One more idea",
        "Automatische Antwort: Ihre Nachricht",
        "Réponse automatique : votre message",
        "Respuesta automática: One more idea",
        "Risposta automatica: One more idea",
        "Resposta automática: One more idea",
        "Automatisch antwoord: One more idea",
        "Autosvar: One more idea",
        "Automatiskt svar: One more idea",
        "自動返信: One more idea",
        "自动回复: One more idea",
        "Автоответ: One more idea",
        "自动答复: One more idea",  # Chinese Outlook
        "自動応答: One more idea",  # Japanese
        "자동 회신: One more idea",  # Korean Outlook
        "Automaattinen vastaus: One more idea",
        "Otomatik yanıt: One more idea",
        "Αυτόματη απάντηση: One more idea",
        "Automatikus válasz: One more idea",
        "Ausente: One more idea",
        "Automatische beantwoording: One more idea",
        "OOO until Monday",
    ],
)
def test_autoresponder_subjects_in_common_languages(subject: str) -> None:
    store, own_id = sent_store()
    raw = mail("I am interested but away.", headers=f"In-Reply-To: {own_id}\r\n", subject=subject)
    assert reply(store, raw) == "automatic_ignored"
    assert store.leads["lead-001"].response_status == "No Response"


def nested(depth: int) -> bytes:
    head = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    return (
        b"From: person1@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        + head
        + b"Content-Type: text/plain\r\n\r\nhi"
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (nested(1000), "multipart/message parts"),  # 58 KB; RecursionError in the parser before
        (nested(40), "MIME nesting"),
        (b"From: a@b.example\r\n" + b"X-Filler: 1\r\n" * 1000 + b"\r\nhi", "header fields"),
        (b"Subject: " + b"a" * 300_000 + b"\r\n\r\nhi", "bytes of headers"),
    ],
)
def test_parsing_limits_are_checked_before_work(raw: bytes, reason: str) -> None:
    with pytest.raises(UnreadableReplyError, match=reason):
        read_reply(raw)
    store, _ = sent_store()
    assert reply(store, raw) == "unreadable"


def test_an_unknown_charset_falls_back_to_utf8() -> None:
    store, own_id = sent_store()
    raw = mail("No thanks, remove me", headers=f"In-Reply-To: {own_id}\r\n", content_type="text/plain; charset=x-nope")
    assert reply(store, raw) == "reply_rejected"


@dataclass
class CountingLedger:
    records: int = 0
    messages: int = 0

    def record(self, lead_id: str, stage: FollowUpStage) -> LedgerRecord | None:
        self.records += 1
        return None

    def lead_for_message(self, message_id: str) -> str | None:
        self.messages += 1
        return None

    def confirm(self, lead_id: str, stage: FollowUpStage, event: str, message_id: str) -> bool:
        return False

    def reject_after_send(self, lead_id: str, stage: FollowUpStage) -> None:
        pass


def test_thousands_of_references_cost_a_bounded_number_of_lookups() -> None:
    store, _ = sent_store()
    counting = CountingLedger()
    stores = replace(store.stores, ledger=counting)
    references = " ".join(
        f"<rg.lead-001.Followup_1.{n:032x}@x.example> <ses-{n}@email.amazonses.com>" for n in range(1500)
    )
    started = time.perf_counter()
    outcome = handle_reply(mail(headers=f"References: {references}\r\n"), stores, NOW, FollowUpPolicy(), classify, KEY)
    assert outcome == "unauthenticated_sender"
    assert counting.records + counting.messages <= MAX_REFERENCES
    print(f"3000 references: {time.perf_counter() - started:.3f} s")  # a figure, not an assertion


@settings(max_examples=fuzz_examples() * 4, deadline=None, derandomize=True)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=2000), st.sampled_from(["eml", "hdr", "mime"]))
def test_any_bytes_are_read_or_refused_never_raised(noise: bytes, at: int, where: str) -> None:
    base = (EVENTS / "inbound-reply.eml").read_bytes()
    if where == "hdr":
        base = b'Subject: =?x-unknown?q?caf=E9?=\r\nContent-Type: text/plain; charset="' + noise[:20] + b'"\r\n' + base
    elif where == "mime":
        base = (
            b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
            b"Content-Type: text/html; charset=x-nope\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + noise + b"\r\n--b--\r\n"
        )
    raw = base[:at] + noise + base[at:]
    try:
        reply = read_reply(raw)
    except UnreadableReplyError:
        return
    assert isinstance(reply.text, str) and len(reply.referenced_ids) <= MAX_REFERENCES


@pytest.mark.parametrize("settled", ["Converted", "Unsubscribed", "Bounced"])
def test_a_reply_never_overwrites_a_settled_outcome(settled: str) -> None:
    # Given a lead that converted (or opted out, or bounced) after its follow-up
    store, own_id = sent_store()
    store.leads["lead-001"].response_status = settled
    # When an interested-sounding reply to the old follow-up arrives
    reply(store, mail(headers=f"In-Reply-To: {own_id}\r\n"))
    # Then the outcome stands (statistics and opt-outs are not undone), and the reply is noted
    lead = store.leads["lead-001"]
    assert lead.response_status == settled
    assert lead.engagement_history[-1].get("heard", "Interested") == "Interested"
