"""The quality gate every AI-written follow-up passes before it is sent (plain Python).

A draft that fails any check is replaced by the template message; the first problem
found is the recorded fallback reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reengage.domain.knowledge import KnowledgeBase
from reengage.domain.leads import FollowUpStage, Lead, first_name
from reengage.domain.text import CONTROL_IN_BODY

SUBJECT_LIMITS = (3, 100)  # characters
BODY_WORD_LIMITS = (40, 260)

_ACKNOWLEDGES = re.compile(
    r"following up|follow(ing)? up on|my (last|previous|earlier|first|recent) (note|message|email|e-mail)s?|"
    r"(wrote|reached out|emailed|written) (to you|before|twice|earlier|about|last)|"
    r"\bi (wrote|reached out|emailed|sent)\b|circling back|closing the loop|earlier (note|message|email)s?|"
    r"(note|message|email) i sent|in case it slipped",
    re.IGNORECASE,
)
_FINAL = re.compile(
    r"\b(final|last) (note|message|email|e-mail|outreach|time|one)\b|last one i will send|"
    r"(will not|won't|will no longer) (follow up|write|reach out|contact)|closing the loop|"
    r"\bfinal\b.{0,20}\b(outreach|follow[ -]?up)",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(
    r"\{\{?[^}]*\}?\}|\[(?:[A-Z][A-Za-z ]{1,30}|your[^\]]{0,30}|insert[^\]]*)\]|<[A-Za-z_ ]{2,30}>|\bXXX+\b|\bTODO\b|"
    r"lorem ipsum",
    re.IGNORECASE,
)
_URL = re.compile(r"(?:https?://|www\.)[^\s<>()\"']+", re.IGNORECASE)
_BARE_DOMAIN = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:com|net|org|io|co|ai|app|biz|info|xyz|ly|me|example)\b", re.I)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_REPLY_PREFIX = re.compile(r"^\s*(re|fwd?|aw|wg)\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class QualityVerdict:
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in allowed)


def _lead_hosts(lead: Lead) -> tuple[str, ...]:
    """The lead's own domains may be named (their website, their email domain)."""
    website = re.sub(r"^https?://", "", lead.company_website, flags=re.IGNORECASE).split("/")[0].split(":")[0]
    hosts = [lead.email.split("@")[-1], website.removeprefix("www.")]
    return tuple(host.lower() for host in hosts if host)


def _link_problems(body: str, knowledge: KnowledgeBase, lead: Lead) -> list[str]:
    allowed = knowledge.allowed_link_domains + _lead_hosts(lead)
    hosts = [
        re.sub(r"^(https?://)?(www\.)?", "", url, flags=re.IGNORECASE).split("/")[0].split(":")[0]
        for url in _URL.findall(body)
    ]
    hosts += _BARE_DOMAIN.findall(_EMAIL.sub(" ", _URL.sub(" ", body)))
    problems = [f"link to a domain that is not allowed: {host}" for host in hosts if not _host_allowed(host, allowed)]
    problems += [
        f"contains an email address: {address}"
        for address in _EMAIL.findall(body)
        if address.lower() != lead.email.lower()
    ]
    return problems


def check_follow_up(
    subject: str, body: str, lead: Lead, stage: FollowUpStage, knowledge: KnowledgeBase
) -> QualityVerdict:
    """Every problem with a draft (subject + plain-text body) for this lead and stage."""
    problems: list[str] = []
    if not SUBJECT_LIMITS[0] <= len(subject.strip()) <= SUBJECT_LIMITS[1]:
        problems.append(f"subject length {len(subject.strip())} outside {SUBJECT_LIMITS}")
    if _REPLY_PREFIX.match(subject):
        problems.append("subject pretends to be a reply or forward")
    if "\n" in subject or "\r" in subject or CONTROL_IN_BODY.search(subject + body):
        problems.append("control characters or line breaks in the subject")
    words = len(body.split())
    if not BODY_WORD_LIMITS[0] <= words <= BODY_WORD_LIMITS[1]:
        problems.append(f"body has {words} words, outside {BODY_WORD_LIMITS}")
    if _PLACEHOLDER.search(subject + "\n" + body):
        problems.append("unfilled placeholder")
    if not _ACKNOWLEDGES.search(body):
        problems.append("does not acknowledge the earlier message")
    says_final = bool(_FINAL.search(subject + "\n" + body))
    if stage is FollowUpStage.FOLLOWUP_2 and not says_final:
        problems.append("final follow-up does not say it is the last message")
    if stage is FollowUpStage.FOLLOWUP_1 and says_final:
        problems.append("first follow-up claims to be the last message")
    name, company = first_name(lead.name), lead.company.strip()
    mentions = [value for value in (name, company) if value and value.lower() in (subject + body).lower()]
    if (name or company) and not mentions:
        problems.append("mentions neither the lead's name nor the company")
    problems.extend(_link_problems(body, knowledge, lead))
    return QualityVerdict(tuple(problems))
