"""Inbound replies read as facts: who wrote, which of our messages they quote, a person or an
autoresponder, and what they said (plain Python over the raw email).

Matching a reply to its lead and recording it is services/responses.py.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr

from reengage.domain.leads import ResponseStatus

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


def read_reply(raw: bytes) -> InboundReply:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
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
