"""Inbound replies: which lead answered, whether it is a person or an autoresponder, and what they said.

Plain Python over a parsed email. Matching is strict: the `In-Reply-To`/`References`
headers must name a message reengage sent (its SES message id); only when they name
none is the sender's address used. Out-of-office and other automatic replies never stop
a sequence.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

from reengage.feedback import UnknownLeadError, record_response
from reengage.leads import STAGE_ORDER, FollowUpStage, ResponseStatus
from reengage.ports import LeadStore
from reengage.ses_events import decode_tag, encode_tag

_MESSAGE_ID = re.compile(r"<([^<>@\s]+)@[^<>\s]+>")
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|ooo\b|abwesenheit|absence|"
    r"vacation|away from (the )?office|r[ée]ponse automatique|respuesta autom[áa]tica|undeliverable|"
    r"delivery status notification)",
    re.IGNORECASE,
)
_REJECTED = re.compile(
    r"not interested|no thanks|no,? thank you|unsubscribe|remove me|take me off|stop (emailing|contacting|sending)|"
    r"please stop|not a (good )?fit|don'?t (contact|email)|do not (contact|email)|we'?re all set|not looking",
    re.IGNORECASE,
)
_INTERESTED = re.compile(
    r"\binterested\b|let'?s (talk|chat|connect|meet)|sounds (good|great|interesting)|tell me more|"
    r"book a (call|time|meeting)|schedule a|set up a (call|meeting)|happy to (chat|talk)|\bdemo\b|"
    r"what times?|available (on|next|this)|send (me )?(more|details|pricing)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class InboundReply:
    sender: str
    subject: str
    referenced_ids: tuple[str, ...]  # SES message ids (the part before @) named in In-Reply-To/References
    automatic: bool
    text: str


def is_automatic(message: EmailMessage) -> bool:
    """RFC 3834 and the usual autoresponder headers and subjects."""
    auto_submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if any(message.get(name) for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")):
        return True
    if str(message.get("Precedence", "")).strip().lower() in {"bulk", "junk", "auto_reply", "list"}:
        return True
    return bool(_AUTO_SUBJECT.match(str(message.get("Subject", ""))))


def _new_text(message: EmailMessage) -> str:
    """The reply's own words: the plain part without the quoted message below it."""
    part = message.get_body(("plain",))
    text = str(part.get_content()) if part is not None else ""
    lines = []
    for line in text.splitlines():
        if line.startswith(">") or re.match(r"^\s*On .{5,200} wrote:\s*$", line) or line.strip() == "--":
            break
        lines.append(line)
    return "\n".join(lines).strip()[:5000]


def read_reply(message: EmailMessage) -> InboundReply:
    references = " ".join(str(message.get(name, "")) for name in ("In-Reply-To", "References"))
    return InboundReply(
        sender=parseaddr(str(message.get("From", "")))[1].strip(),
        subject=str(message.get("Subject", "")),
        referenced_ids=tuple(dict.fromkeys(_MESSAGE_ID.findall(references))),
        automatic=is_automatic(message),
        text=_new_text(message),
    )


def classify(text: str) -> ResponseStatus:
    """Keywords first for refusals (they often contain words like "interested")."""
    if _REJECTED.search(text):
        return ResponseStatus.REJECTED
    if _INTERESTED.search(text):
        return ResponseStatus.INTERESTED
    return ResponseStatus.REPLIED


def recipients(message: EmailMessage) -> list[str]:
    return [address for _, address in getaddresses([str(message.get("To", ""))]) if address]


def own_message_id(lead_id: str, stage: str, nonce: str, domain: str) -> str:
    """The Message-ID reengage gives a follow-up: it names the lead and stage, whose ledger record
    exists before the email leaves, so a reply quoting it matches without any lookup table."""
    return f"<rg.{encode_tag(lead_id)}.{stage}.{nonce}@{domain}>"


def _lead_of(store: LeadStore, reference: str) -> str | None:
    """The lead a referenced message went to: our own Message-ID, or the id SES assigned."""
    if reference.startswith("rg."):
        parts = reference.split(".")
        if len(parts) == 4 and parts[2] in STAGE_ORDER:
            lead_id = decode_tag(parts[1])
            if store.ledger_record(lead_id, FollowUpStage(parts[2])) is not None:
                return lead_id
        return None
    return store.lead_for_message(reference)


def handle_reply(
    raw: bytes,
    store: LeadStore,
    now: datetime,
    max_followups: int,
    classifier: Callable[[str], ResponseStatus] = classify,
) -> str:
    """Match an inbound email to its lead and record the answer; returns what happened."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    reply = read_reply(message)
    if reply.automatic:
        return "automatic_ignored"
    lead_id = next((found for found in (_lead_of(store, ref) for ref in reply.referenced_ids) if found), None)
    matched_by = "thread"
    if lead_id is None and reply.sender:
        lead_id, matched_by = store.lead_for_email(reply.sender), "sender"
    if lead_id is None:
        return "unmatched"
    status = classifier(reply.text)
    try:
        record_response(
            store, lead_id, status, "reply", now, max_followups, matched_by=matched_by, subject=reply.subject[:200]
        )
    except UnknownLeadError:
        return "unmatched"
    return f"reply_{status.value.lower().replace(' ', '_')}"
