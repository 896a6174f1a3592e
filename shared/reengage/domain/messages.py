"""The email a lead gets, as data: templates, the text and HTML parts, and the outgoing email.

Followup_1 (`strategic_followup`): acknowledges the earlier message, adds new value,
missed-opportunity angle. Followup_2 (`final_opportunity`): the last outreach, more
direct, competitive urgency, and says so. Lead fields are untrusted: they are
stripped of control characters, capped, and HTML-escaped in the HTML part.

Whoever writes the words (a template here, or the model in adapters/openai_writer.py),
`compose` builds both parts and `follow_up_email` the email that is sent; the SES mailer
(adapters/ses_mailer.py) turns that into MIME with every header.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reengage.domain.knowledge import KnowledgeBase
from reengage.domain.leads import FollowUpStage, Lead, days_since, first_name
from reengage.domain.text import clean_field

GENERATOR_TEMPLATE = "template"
GENERATOR_AI = "ai"


@dataclass(frozen=True)
class FollowUpMessage:
    subject: str
    text: str
    html: str
    generator: str
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fallback_reason: str = ""  # why the AI draft was not used (template messages only)


@dataclass(frozen=True)
class _Template:
    subject: str
    paragraphs: tuple[str, ...]


# Placeholders: {first_name}, {company}, {when}, {proof_point}, {call_to_action}, {our_company}.
# Every one is always filled.
_TEMPLATES: dict[FollowUpStage, tuple[_Template, ...]] = {
    FollowUpStage.FOLLOWUP_1: (
        _Template(
            subject="One more idea for {company}",
            paragraphs=(
                "Hi {first_name},",
                "I wanted to follow up on the note I sent {when}. I know inboxes fill up fast,"
                " so here is the short version.",
                "{proof_point} It would be a shame for {company} to miss that while priorities"
                " for next quarter are still being set.",
                "Would {call_to_action} be useful? If the timing is wrong, just say so.",
            ),
        ),
        _Template(
            subject="Following up for {company}",
            paragraphs=(
                "Hi {first_name},",
                "Following up on my message from {when}, in case it slipped past.",
                "One thing I did not mention: {proof_point} That is why the conversation tends to"
                " be worth having early, and I have two or three ideas that fit {company} in particular.",
                "Is there a good time for {call_to_action} to walk you through them?",
            ),
        ),
    ),
    FollowUpStage.FOLLOWUP_2: (
        _Template(
            subject="Last note from me, {first_name}",
            paragraphs=(
                "Hi {first_name},",
                "This is my final outreach; I have written twice before, most recently {when},"
                " and I do not want to crowd your inbox.",
                "Teams competing with {company} are already moving on this, and every quarter"
                " of waiting makes the gap harder to close. {proof_point}",
                "If it is a priority, reply and we can set up {call_to_action}. If not, no reply"
                " is needed and I will not follow up again.",
            ),
        ),
        _Template(
            subject="Closing the loop with {company}",
            paragraphs=(
                "Hi {first_name},",
                "I am closing the loop on my earlier messages (the last one was {when}); this is"
                " the last one I will send.",
                "The cost of leaving this for later is real: the companies that act first set the"
                " bar the rest of the market is measured against. I would rather {company} be"
                " one of them than catch up later.",
                "If {call_to_action} makes sense, reply with a time. Otherwise, thank you for"
                " reading, and I wish you and the team all the best.",
            ),
        ),
    ),
}


_LINKISH = re.compile(r"@|://|\bwww\.", re.IGNORECASE)


def safe_mention(value: str, fallback: str) -> str:
    """A lead field fit to appear in an email: cleaned, and never carrying a link or an address."""
    cleaned = clean_field(value)
    return fallback if not cleaned or _LINKISH.search(cleaned) else cleaned


def describe_elapsed(days: int | None) -> str:
    if days is None:
        return "a little while ago"
    if days == 0:
        return "earlier today"
    if days == 1:
        return "yesterday"
    if days < 14:
        return f"{days} days ago"
    return f"{days // 7} weeks ago"


def _stable_choice(stage: FollowUpStage, lead_id: str, count: int, salt: str = "") -> int:
    # Stable per lead, so a retried render gives the same message.
    digest = hashlib.sha256(f"{stage}:{lead_id}:{salt}".encode()).digest()
    return digest[0] % count


def compose(
    subject: str, paragraphs: list[str], knowledge: KnowledgeBase, generator: str, **usage: Any
) -> FollowUpMessage:
    """Text and HTML parts from paragraphs of plain text, with the signature and the postal address.

    The HTML is built here from escaped text, never taken from a template or a model.
    """
    footer = knowledge.postal_address
    text = "\n\n".join([*paragraphs, "Best regards,\n" + knowledge.signature]) + f"\n\n--\n{footer}\n"
    html_paragraphs = "".join(f"<p>{html.escape(paragraph)}</p>" for paragraph in paragraphs)
    signature = "<br>".join(html.escape(line) for line in knowledge.signature.splitlines())
    html_body = (
        f"<html><body>{html_paragraphs}<p>Best regards,<br>{signature}</p>"
        f'<p style="color:#666;font-size:12px">{html.escape(footer)}</p></body></html>'
    )
    return FollowUpMessage(subject=subject, text=text, html=html_body, generator=generator, **usage)


def render_follow_up(lead: Lead, stage: FollowUpStage, knowledge: KnowledgeBase, now: datetime) -> FollowUpMessage:
    """The template follow-up for one lead and stage, as plain text and HTML."""
    points = knowledge.proof_points
    values = {
        "first_name": safe_mention(first_name(lead.name), "there"),
        "company": safe_mention(lead.company, "your team"),
        "when": describe_elapsed(days_since(lead.last_contacted, now)),
        "proof_point": points[_stable_choice(stage, lead.id, len(points), "proof")] if points else "",
        "call_to_action": knowledge.call_to_action,
        "our_company": knowledge.company,
    }
    options = _TEMPLATES[stage]
    template = options[_stable_choice(stage, lead.id, len(options))]
    paragraphs = [" ".join(paragraph.format(**values).split()) for paragraph in template.paragraphs]
    return compose(template.subject.format(**values), paragraphs, knowledge, GENERATOR_TEMPLATE)


class TemplateWriter:
    """Writes every follow-up from the templates (no AI configured)."""

    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.knowledge = knowledge

    def start_batch(self, time_left_ms: Callable[[], int] | None) -> None:
        """Templates need no time budget."""

    def write(self, lead: Lead, stage: FollowUpStage, now: datetime) -> FollowUpMessage:
        return render_follow_up(lead, stage, self.knowledge, now)


@dataclass(frozen=True)
class OutgoingEmail:
    """One follow-up as it leaves: recipient, both parts, and the facts the mailer turns into headers."""

    to: str
    to_name: str
    subject: str
    text: str
    html: str
    message_id: str = ""  # our own Message-ID (correlation.own_message_id)
    unsubscribe_url: str = ""  # one-click link: List-Unsubscribe and a visible link
    tags: dict[str, str] = field(default_factory=dict)  # SES message tags (lead, stage, campaign)


def follow_up_email(
    lead: Lead,
    stage: FollowUpStage,
    campaign_id: str,
    message: FollowUpMessage,
    message_id: str,
    unsubscribe_url: str = "",
) -> OutgoingEmail:
    """The email for one follow-up: the message, with the visible unsubscribe link when there is one."""
    text, html_body = message.text, message.html
    if unsubscribe_url:
        text += f"\nTo stop receiving these emails: {unsubscribe_url}\n"
        link = f'<p style="color:#666;font-size:12px"><a href="{html.escape(unsubscribe_url)}">Unsubscribe</a></p>'
        html_body = html_body.replace("</body></html>", link + "</body></html>")
    return OutgoingEmail(
        to=lead.email,
        to_name=lead.name,
        subject=message.subject,
        text=text,
        html=html_body,
        message_id=message_id,
        unsubscribe_url=unsubscribe_url,
        tags={"lead_id": lead.id, "stage": stage.value, "campaign": campaign_id},
    )
