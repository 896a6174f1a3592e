"""Inbound replies read as facts: who wrote (and whether SES could authenticate them), which of our
messages they quote, a person or an autoresponder, and what they said (plain Python over the raw email).

An inbound email is hostile input: its size, header count, MIME nesting and number of
references are checked on the raw bytes before the email package parses it, an unknown
charset falls back to UTF-8 with replacement characters, and anything the parser still
cannot read is an `UnreadableReplyError`, never a traceback.

Matching a reply to its lead and recording it is services/responses.py.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import Any

from reengage.domain.companies import registrable_domain
from reengage.domain.leads import ResponseStatus

MAX_REPLY_BYTES = 10 * 1024 * 1024  # a reply with an attachment or two; SES accepts up to 40 MB
MAX_HEADER_BYTES = 256 * 1024
MAX_HEADER_FIELDS = 500
MAX_MIME_CONTAINERS = 64  # multipart/* and message/* parts: bounds the parser's recursion
MAX_MIME_DEPTH = 16
MAX_REFERENCES = 20  # In-Reply-To first, then the newest References: each costs a ledger read
MAX_TEXT = 5000

_MESSAGE_ID = re.compile(r"<([^<>@\s]+)@[^<>\s]+>")
_CONTAINER = re.compile(rb"content-type:\s*(multipart|message)/", re.IGNORECASE)
_HEADER_FIELD = re.compile(rb"^[^\s:]+:", re.MULTILINE)
# Autoresponder subjects, anywhere in the subject ("Re: ... [Out of Office]"), in the common languages.
_AUTO_SUBJECT = re.compile(
    r"auto(matic|matische|matisch|matique|m[aá]tic[ao]|matiskt?|matisk)?[ -]?"
    r"(reply|response|answer|antwort|antwoord|r[ée]ponse|respuesta|resposta|risposta|svar)|"
    r"\bout of (the )?office\b|\booo\b|away from (the )?office|\bon vacation\b|vacation (reply|notice)|"
    r"abwesenheit|abwesend|\bnicht im b[üu]ro\b|r[ée]ponse automatique|absence du bureau|\bhors du bureau\b|"
    r"respuesta autom[áa]tica|fuera de la oficina|resposta autom[áa]tica|fora do escrit[óo]rio|"
    r"risposta automatica|fuori (sede|ufficio)|automatisch antwoord|\bafwezig\b|automatiskt svar|"
    r"\bfr[åa]nvaro\b|automatisk svar|frav[æa]r|poza biurem|odpowied[źz] automatyczna|automatick[aá] odpov[eě][dď]|"
    r"автоответ|автоматический ответ|нет на месте|自動返信|自動応答|不在|自动回复|自动答复|自動回覆|"
    r"자동 ?(응답|회신)|\bpoissa\b|automaattinen vastaus|otomatik yan[ıi]t|ofis d[ıi]ş[ıi]nda|"
    r"αυτόματη απάντηση|automatikus v[áa]lasz|házon kív[üu]l|\bausente\b|automatische beantwoording|"
    r"undeliverable|delivery status notification|mail delivery (failed|subsystem)|returned mail",
    re.IGNORECASE,
)
_REJECTED = re.compile(
    r"not interested|no thanks|no,? thank you|unsubscribe|remove me|take me off|stop (emailing|contacting|sending)|"
    r"please stop|not a (good )?fit|don'?t (contact|email)|do not (contact|email)|we'?re all set|not looking",
    re.IGNORECASE,
)
# Refusals of email itself (not just of the offer): the address goes on the suppression list too.
_OPT_OUT = re.compile(
    r"unsubscribe|opt[ -]?(me )?out|remove (me|us|my (e-?mail|address))|take (me|us) off|"
    r"stop (e-?mailing|contacting|sending|writing|messaging)|(don'?t|do not|never) (e-?mail|contact|write to) (me|us)|"
    r"no (more|further) (e-?mails|messages)",
    re.IGNORECASE,
)
_INTERESTED = re.compile(
    r"\binterested\b|let'?s (talk|chat|connect|meet)|sounds (good|great|interesting)|tell me more|"
    r"book a (call|time|meeting)|schedule a|set up a (call|meeting)|happy to (chat|talk)|\bdemo\b|"
    r"what times?|available (on|next|this)|send (me )?(more|details|pricing)",
    re.IGNORECASE,
)
_QUOTE_INTRO = re.compile(r"^\s*(On .{5,200} wrote:|-{2,} ?Original Message ?-{2,}|From: .+)\s*$")
_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*([a-z]+)", re.IGNORECASE)
_PROPERTY = re.compile(r"\b(smtp\.mailfrom|header\.from|header\.d|header\.i)\s*=\s*([^\s;]+)", re.IGNORECASE)
SES_AUTHSERV_ID = "amazonses.com"


class UnreadableReplyError(ValueError):
    """An inbound email over a parsing limit, or one the email package cannot read."""


@dataclass(frozen=True)
class ReceiptVerdicts:
    """SES's verdicts on an inbound email (lower case: pass, fail, none, gray, ...)."""

    spf: str = ""
    dkim: str = ""
    dmarc: str = ""
    aligned: bool = True  # the passing SPF/DKIM identity is the From domain's (DMARC pass implies it)
    # SES's header.from (the From domain it evaluated) is the domain of the address we read, when stated.
    same_from: bool = True

    @property
    def authenticated(self) -> bool:
        """SPF or DKIM passed (for the From domain) and DMARC did not fail: the From address is the sender's."""
        passed = self.dmarc == "pass" or (self.aligned and "pass" in (self.spf, self.dkim))
        return passed and self.dmarc != "fail" and self.same_from


NO_VERDICTS = ReceiptVerdicts(aligned=False)


def verdicts_from_receipt(receipt: Mapping[str, Any]) -> ReceiptVerdicts:
    """The verdicts of an SES receipt notification (`receipt.spfVerdict.status` and so on)."""

    def status(name: str) -> str:
        verdict = receipt.get(name)
        return str(verdict.get("status", "")).lower() if isinstance(verdict, Mapping) else ""

    return ReceiptVerdicts(status("spfVerdict"), status("dkimVerdict"), status("dmarcVerdict"))


def _aligned(identity: str, from_domain: str) -> bool:
    """Relaxed alignment (RFC 7489): the same organizational domain (registrable domain by the public
    suffix list), so `x@io` never vouches for `healthtechlabs.io`."""
    organization = registrable_domain(identity.rsplit("@", 1)[-1])
    return organization is not None and organization == registrable_domain(from_domain)


def verdicts_from_headers(message: Message, from_domain: str) -> ReceiptVerdicts:
    """SES's verdicts from the Authentication-Results header it puts on top of a received email.

    Only the topmost Authentication-Results counts, and only when SES wrote it (authserv-id
    amazonses.com): any lower one came with the email and could say anything."""
    headers = message.get_all("Authentication-Results") or []
    if not headers:
        return NO_VERDICTS
    text = _COMMENT.sub("", str(headers[0]))
    authserv, _, results = text.partition(";")
    if authserv.strip().lower() != SES_AUTHSERV_ID:
        return NO_VERDICTS
    found: dict[str, str] = {}
    aligned, same_from = False, True
    for clause in results.split(";"):
        result = _RESULT.search(clause)
        if result is None:
            continue
        method, verdict = result.group(1).lower(), result.group(2).lower()
        stated = [
            value.rsplit("@", 1)[-1].strip(".").lower()
            for name, value in _PROPERTY.findall(clause)
            if name.lower() == "header.from"
        ]
        # The From domain SES judged must be the one of the address we read (two readings of one
        # From header, or a display name that looks like an address, must not mix).
        same_from = same_from and all(domain == from_domain.lower() for domain in stated)
        if method in found and found[method] == "pass":
            continue  # one passing DKIM signature is enough
        found[method] = verdict
        identities = [value for name, value in _PROPERTY.findall(clause) if name.lower() != "header.from"]
        if verdict == "pass" and method in ("spf", "dkim"):
            aligned = aligned or any(_aligned(identity, from_domain) for identity in identities)
    return ReceiptVerdicts(found.get("spf", ""), found.get("dkim", ""), found.get("dmarc", ""), aligned, same_from)


@dataclass(frozen=True)
class InboundReply:
    sender: str
    subject: str
    referenced_ids: tuple[str, ...]  # message ids (the part before @) named in In-Reply-To/References
    automatic: bool
    text: str
    verdicts: ReceiptVerdicts = NO_VERDICTS


def is_automatic(message: Message) -> bool:
    """RFC 3834, the usual autoresponder headers, delivery reports and subject markers."""
    auto_submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if any(message.get(name) for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")):
        return True
    if str(message.get("Precedence", "")).strip().lower() in {"bulk", "junk", "auto_reply", "list"}:
        return True
    if message.get_content_type() == "multipart/report":
        return True
    return bool(_AUTO_SUBJECT.search(str(message.get("Subject", ""))))


class _HtmlText(HTMLParser):
    """The visible text of an HTML part, without scripts, styles and quoted messages (blockquote)."""

    _HIDDEN = frozenset({"script", "style", "head", "title", "blockquote"})
    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_text(markup: str) -> str:
    """Tags stripped with the standard library's HTML parser."""
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    return re.sub(r"[ \t\xa0]+", " ", "".join(parser.parts))


def part_text(part: Message) -> str:
    """A text part's content; an unknown or wrong charset falls back to UTF-8 with replacements."""
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except (LookupError, ValueError, AttributeError, TypeError):
        pass
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""


def _new_text(message: EmailMessage) -> str:
    """The reply's own words: the plain part (or the HTML part's text) without the quoted message."""
    part = message.get_body(("plain", "html"))
    if part is None:
        return ""
    text = part_text(part)
    if part.get_content_subtype() == "html":
        text = html_text(text)
    lines = []
    for line in text.splitlines():
        if line.startswith(">") or _QUOTE_INTRO.match(line) or line.strip() == "--":
            break
        lines.append(line)
    return "\n".join(lines).strip()[:MAX_TEXT]


def check_limits(raw: bytes) -> None:
    """Raises UnreadableReplyError when the raw email is over a parsing limit (before any parsing)."""
    if len(raw) > MAX_REPLY_BYTES:
        raise UnreadableReplyError(f"{len(raw)} bytes; inbound emails are read up to {MAX_REPLY_BYTES}")
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    if end > MAX_HEADER_BYTES:
        raise UnreadableReplyError(f"{end} bytes of headers; at most {MAX_HEADER_BYTES}")
    fields = len(_HEADER_FIELD.findall(raw, 0, end))
    if fields > MAX_HEADER_FIELDS:
        raise UnreadableReplyError(f"{fields} header fields; at most {MAX_HEADER_FIELDS}")
    containers = len(_CONTAINER.findall(raw))
    if containers > MAX_MIME_CONTAINERS:
        raise UnreadableReplyError(f"{containers} multipart/message parts; at most {MAX_MIME_CONTAINERS}")


def _depth(message: Message) -> int:
    deepest, stack = 0, [(message, 1)]
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))
    return deepest


def _references(message: Message) -> tuple[str, ...]:
    """In-Reply-To first, then References newest first (a thread's latest message is the one replied to)."""
    in_reply_to = _MESSAGE_ID.findall(str(message.get("In-Reply-To", "")))
    references = _MESSAGE_ID.findall(str(message.get("References", "")))
    named = [reference for reference in [*in_reply_to, *reversed(references)] if len(reference) <= 512]
    return tuple(dict.fromkeys(named))[:MAX_REFERENCES]


def read_reply(raw: bytes) -> InboundReply:
    """The facts of an inbound email; UnreadableReplyError when it is over a limit or unparseable."""
    check_limits(raw)
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        depth = _depth(message)
        if depth > MAX_MIME_DEPTH:
            raise UnreadableReplyError(f"MIME nesting {depth} deep; at most {MAX_MIME_DEPTH}")
        senders = [address for _, address in getaddresses([str(v) for v in message.get_all("From") or []]) if address]
        sender = senders[0].strip() if len(senders) == 1 else ""  # two From addresses: no one in particular
        sender = sender if len(sender) <= 320 else ""
        from_domain = sender.rsplit("@", 1)[-1].lower() if "@" in sender else ""
        return InboundReply(
            sender=sender,
            subject=str(message.get("Subject", "")),
            referenced_ids=_references(message),
            automatic=is_automatic(message),
            text=_new_text(message),
            verdicts=verdicts_from_headers(message, from_domain),
        )
    except UnreadableReplyError:
        raise
    except Exception as error:  # the email package on hostile input: any of its errors means unreadable
        raise UnreadableReplyError(f"cannot parse the email: {type(error).__name__}") from error


def classify(text: str) -> ResponseStatus:
    """Keywords first for refusals (they often contain words like "interested")."""
    if _REJECTED.search(text) or _OPT_OUT.search(text):
        return ResponseStatus.REJECTED
    if _INTERESTED.search(text):
        return ResponseStatus.INTERESTED
    return ResponseStatus.REPLIED


def opts_out(text: str) -> bool:
    """The reply refuses email itself ("remove me", "unsubscribe", "stop emailing"...)."""
    return bool(_OPT_OUT.search(text))
