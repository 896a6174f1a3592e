"""Follow-up messages written from templates, one tone per stage.

Followup_1 (`strategic_followup`): acknowledges the earlier message, adds new value,
missed-opportunity angle. Followup_2 (`final_opportunity`): the last outreach, more
direct, competitive urgency, and says so. Lead fields are untrusted: they are
stripped of control characters, capped, and HTML-escaped in the HTML part.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import datetime

from reengage.leads import FollowUpStage, Lead, days_since, first_name

GENERATOR_TEMPLATE = "template"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIELD_CAP = 80


@dataclass(frozen=True)
class FollowUpMessage:
    subject: str
    text: str
    html: str
    generator: str


@dataclass(frozen=True)
class _Template:
    subject: str
    paragraphs: tuple[str, ...]


# Placeholders: {first_name}, {company}, {when}, {sender_name}. Every one is always filled.
_TEMPLATES: dict[FollowUpStage, tuple[_Template, ...]] = {
    FollowUpStage.FOLLOWUP_1: (
        _Template(
            subject="One more idea for {company}",
            paragraphs=(
                "Hi {first_name},",
                "I wanted to follow up on the note I sent {when}. I know inboxes fill up fast,"
                " so here is the short version.",
                "Since then we have helped teams like {company} cut the time they spend on"
                " manual follow-up work by a third, and the first results usually show within"
                " a month. It would be a shame for {company} to miss the window while"
                " priorities for next quarter are still being set.",
                "Would a 15-minute call next week be useful? If the timing is wrong, just say so.",
            ),
        ),
        _Template(
            subject="Following up for {company}",
            paragraphs=(
                "Hi {first_name},",
                "Following up on my message from {when}, in case it slipped past.",
                "One thing I did not mention: most teams we work with see the biggest gains"
                " in the first few weeks, which is why the conversation tends to be worth"
                " having early. I put together two or three ideas that fit {company} in"
                " particular.",
                "Is there a good time this week or next to walk you through them?",
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
                " of waiting makes the gap harder to close. If it is a priority, I would be glad"
                " to show you what they are doing differently.",
                "If not, no reply is needed and I will not follow up again.",
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
                " one of them.",
                "If a short call makes sense, reply with a time. Otherwise, thank you for reading,"
                " and I wish you and the team all the best.",
            ),
        ),
    ),
}


def clean_field(value: str, cap: int = _FIELD_CAP) -> str:
    """Untrusted lead text: control characters removed, white space folded, length capped."""
    folded = " ".join(_CONTROL.sub(" ", value).split())
    return folded[:cap].strip()


def _when(days: int | None) -> str:
    if days is None:
        return "a little while ago"
    if days == 0:
        return "earlier today"
    if days == 1:
        return "yesterday"
    if days < 14:
        return f"{days} days ago"
    return f"{days // 7} weeks ago"


def _choose(stage: FollowUpStage, lead_id: str) -> _Template:
    # Stable per lead, so a retried render gives the same message.
    options = _TEMPLATES[stage]
    digest = hashlib.sha256(f"{stage}:{lead_id}".encode()).digest()
    return options[digest[0] % len(options)]


def render_follow_up(lead: Lead, stage: FollowUpStage, sender_name: str, now: datetime) -> FollowUpMessage:
    """The template follow-up for one lead and stage, as plain text and HTML."""
    values = {
        "first_name": clean_field(first_name(lead.name)) or "there",
        "company": clean_field(lead.company) or "your team",
        "when": _when(days_since(lead.last_contacted, now)),
        "sender_name": clean_field(sender_name),
    }
    template = _choose(stage, lead.id)
    subject = template.subject.format(**values)
    paragraphs = [paragraph.format(**values) for paragraph in template.paragraphs]
    signature = f"Best regards,\n{values['sender_name']}"
    text = "\n\n".join([*paragraphs, signature]) + "\n"
    escaped = {key: html.escape(value) for key, value in values.items()}
    html_paragraphs = [f"<p>{paragraph.format(**escaped)}</p>" for paragraph in template.paragraphs]
    html_signature = f"<p>Best regards,<br>{escaped['sender_name']}</p>"
    html_body = "<html><body>" + "".join([*html_paragraphs, html_signature]) + "</body></html>"
    return FollowUpMessage(subject=subject, text=text, html=html_body, generator=GENERATOR_TEMPLATE)
