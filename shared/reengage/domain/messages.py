"""The email a lead gets, as data: templates, the text and HTML parts, and the outgoing email.

Followup_1 (`strategic_followup`): acknowledges the earlier message, adds new value,
missed-opportunity angle. Followup_2 (`final_opportunity`): the last outreach, more
direct, competitive urgency, and says so, with no promise of more contact. Lead fields
are untrusted: only what passes the gate is repeated (domain/quality.py `LeadFacts`:
names parsed as a CRM would, companies without their legal form), and the HTML part is
built from escaped text.

Whoever writes the words (a template here, or the model in adapters/openai_writer.py),
`compose` builds both parts and `follow_up_email` the email that is sent; the SES mailer
(adapters/ses_mailer.py) turns that into MIME with every header.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from reengage.domain.knowledge import KnowledgeBase
from reengage.domain.leads import FollowUpStage, Lead
from reengage.domain.quality import LeadFacts, check_follow_up

GENERATOR_TEMPLATE = "template"
GENERATOR_AI = "ai"


@dataclass(frozen=True)
class FollowUpMessage:
    subject: str
    text: str
    html: str
    generator: str
    model: str = ""  # as the server reported it, whenever a model was called (used or not)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fallback_reason: str = ""  # why the AI draft was not used (template messages only)
    prose: str = ""  # what the gate read: greeting and paragraphs, before the link, signature and footer
    problems: tuple[str, ...] = ()  # the gate's verdict on this message; a message with problems is never sent
    ai_calls: int = 0  # paid model calls made for this message
    left_out: tuple[str, ...] = ()  # lead fields the gate kept out of the message, with why


# One variant: subjects in order of preference (the first whose fields are known is used) and
# paragraphs; a paragraph is one text, or (with the company, without it). Slots: {first_name},
# {company}, {when} (the last message, e.g. "last week"), {proof_point}, {call_to_action}.
# Plain language, contractions, and no promise the email does not keep.
@dataclass(frozen=True)
class _Template:
    subjects: tuple[str, ...]
    paragraphs: tuple[str | tuple[str, str], ...]


_TEMPLATES: dict[FollowUpStage, tuple[_Template, ...]] = {
    FollowUpStage.FOLLOWUP_1: (
        _Template(
            subjects=("One more idea for {company}", "One more idea for you"),
            paragraphs=(
                "I'm following up on the note I sent you {when}. I know inboxes fill up fast, so here's the"
                " short version.",
                (
                    "{proof_point} It'd be a shame for {company} to miss out on that while next quarter's plans"
                    " are still open.",
                    "{proof_point} It'd be a shame to miss out on that while next quarter's plans are still open.",
                ),
                "Would {call_to_action} be useful? If the timing's wrong, just let me know.",
            ),
        ),
        _Template(
            subjects=("Quick follow-up for {company}", "Quick follow-up, {first_name}", "A quick follow-up"),
            paragraphs=(
                "I wanted to follow up on the email I sent {when}, in case it got buried.",
                "Here's one thing I didn't mention last time. {proof_point}",
                (
                    "If that's relevant for {company}, would {call_to_action} work? I'll keep it short and practical.",
                    "If that sounds relevant, would {call_to_action} work? I'll keep it short and practical.",
                ),
            ),
        ),
        _Template(
            subjects=("Worth a look for {company}?", "Worth a look, {first_name}?", "Worth a look?"),
            paragraphs=(
                "Just circling back on the note I sent {when}. No pressure, I know things get busy.",
                "Here's something you might find useful. {proof_point}",
                (
                    "Is this on the radar at {company} right now? If so, {call_to_action} is an easy way to see"
                    " whether it fits.",
                    "Is this on your radar right now? If so, {call_to_action} is an easy way to see whether it fits.",
                ),
            ),
        ),
        _Template(
            subjects=("Following up, {first_name}", "Following up with {company}", "Following up on my note"),
            paragraphs=(
                "I'm checking back in on the email I sent {when}, since I didn't want it to get lost.",
                "Here's the short version. {proof_point}",
                (
                    "If you've been meaning to look at how {company} handles this kind of work, now's a good time,"
                    " before next quarter's plans are locked in.",
                    "If you've been meaning to look at how your team handles this kind of work, now's a good time,"
                    " before next quarter's plans are locked in.",
                ),
                "Would {call_to_action} make sense? And if it's not a priority, a one-line reply is plenty.",
            ),
        ),
    ),
    FollowUpStage.FOLLOWUP_2: (
        _Template(
            subjects=("Last note from me, {first_name}", "Last note from me"),
            paragraphs=(
                "This is my last email about this. I've reached out a couple of times, most recently {when},"
                " and I don't want to clutter your inbox.",
                (
                    "Every quarter this waits is another quarter of renewals and hand-offs at {company} left to"
                    " chance. {proof_point}",
                    "Every quarter this waits is another quarter of renewals and hand-offs left to chance."
                    " {proof_point}",
                ),
                "If it's a priority, just reply and we'll set up {call_to_action}. If not, there's no need to"
                " reply, and I won't email you again.",
            ),
        ),
        _Template(
            subjects=("Closing the loop with {company}", "Closing the loop, {first_name}", "Closing the loop"),
            paragraphs=(
                "I'm closing the loop on my earlier emails (the last one was {when}). This is the last one I'll send.",
                (
                    "Putting this off has a real cost: the companies that move first set the bar everyone else"
                    " gets measured against. I'd rather {company} be one of them than play catch-up.",
                    "Putting this off has a real cost: the companies that move first set the bar everyone else"
                    " gets measured against. I'd rather you be one of them than play catch-up.",
                ),
                "If {call_to_action} makes sense, just reply with a time that suits you. Either way, thanks for"
                " reading, and all the best.",
            ),
        ),
        _Template(
            subjects=("One last thing, {first_name}", "One last thing for {company}", "One last thing"),
            paragraphs=(
                "I've written a couple of times, most recently {when}, so I'll keep this short: it's my final note.",
                "{proof_point} Waiting usually means another quarter of follow-ups chased by hand.",
                (
                    "If you'd like to see how it would work for {company}, reply and we'll find a slot for"
                    " {call_to_action}. If not, I'll leave it here. Thanks for your time.",
                    "If you'd like to see how it would work for your team, reply and we'll find a slot for"
                    " {call_to_action}. If not, I'll leave it here. Thanks for your time.",
                ),
            ),
        ),
        _Template(
            subjects=("Before I close this out, {first_name}", "Before I close this out"),
            paragraphs=(
                "I haven't heard back since my last couple of emails (the most recent was {when}), so this will"
                " be my final note.",
                "{proof_point} The sooner it's in place, the sooner nobody has to chase the same follow-ups by hand.",
                (
                    "If now's not the right time for {company}, no problem at all. If it is, reply and I'll set up"
                    " {call_to_action}.",
                    "If now's not the right time, no problem at all. If it is, reply and I'll set up {call_to_action}.",
                ),
            ),
        ),
    ),
}

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def describe_elapsed(last: datetime | None, now: datetime) -> str:
    """When the last message went out, as a person would say it: "a few days ago", "last week",
    "last month", "back in October" (the year added when it was not this year's or last year's)."""
    if last is None:
        return "a little while ago"
    days = max(0, (now - last).days)
    months_apart = (now.year - last.year) * 12 + now.month - last.month
    if days == 0:
        return "earlier today"
    if days == 1:
        return "yesterday"
    if days <= 5:
        return "a few days ago"
    if days <= 10:
        return "last week"
    if days <= 17:
        return "a couple of weeks ago"
    if months_apart == 0:
        return "earlier this month"
    if months_apart == 1:
        return "last month"
    if months_apart < 12:
        return f"back in {_MONTHS[last.month - 1]}"
    return f"back in {_MONTHS[last.month - 1]} {last.year}"


def _stable_choice(stage: FollowUpStage, lead_id: str, count: int, salt: str = "") -> int:
    # Stable per lead, so a retried render gives the same message.
    digest = hashlib.sha256(f"{stage}:{lead_id}:{salt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % count


_LINK_LINES = (
    ("If it's easier, you can ", "pick a time here", "."),
    ("Or, if it's simpler, ", "grab a slot that suits you", "."),
    ("You can also ", "choose a time directly", "."),
)


def greeting(first_name: str) -> str:
    return f"Hi {first_name}," if first_name else "Hi there,"


def compose(
    subject: str, paragraphs: list[str], knowledge: KnowledgeBase, generator: str, **details: Any
) -> FollowUpMessage:
    """Text and HTML parts from paragraphs of prose: reengage adds the one call-to-action link from
    the knowledge base, the signature and the postal address. The HTML is built here from escaped
    text, never taken from a template or a model."""
    footer = knowledge.postal_address
    # The link line varies with the subject, so a lead's messages do not all end the same way.
    before, anchor, after = _LINK_LINES[int(hashlib.sha256(subject.encode()).hexdigest(), 16) % len(_LINK_LINES)]
    link = f"{before}{anchor}: {knowledge.call_to_action_url}"
    blocks = [*paragraphs, link] if knowledge.call_to_action_url else list(paragraphs)
    text = "\n\n".join([*blocks, "Best regards,\n" + knowledge.signature]) + f"\n\n--\n{footer}\n"
    html_paragraphs = "".join(f"<p>{html.escape(paragraph)}</p>" for paragraph in paragraphs)
    if knowledge.call_to_action_url:
        url = html.escape(knowledge.call_to_action_url)
        html_paragraphs += f'<p>{html.escape(before)}<a href="{url}">{html.escape(anchor)}</a>{after}</p>'
    signature = "<br>".join(html.escape(line) for line in knowledge.signature.splitlines())
    html_body = (
        f"<html><body>{html_paragraphs}<p>Best regards,<br>{signature}</p>"
        f'<p style="color:#666;font-size:12px">{html.escape(footer)}</p></body></html>'
    )
    return FollowUpMessage(
        subject=subject, text=text, html=html_body, generator=generator, prose="\n\n".join(paragraphs), **details
    )


def _fill(template: _Template, values: dict[str, str]) -> tuple[str, list[str]]:
    known = {key for key, value in values.items() if value}
    subject = next(
        option
        for option in template.subjects
        if all(slot in known for slot in ("first_name", "company") if "{" + slot + "}" in option)
    )
    paragraphs = [greeting(values["first_name"])]
    for paragraph in template.paragraphs:
        text = paragraph if isinstance(paragraph, str) else paragraph[0 if values["company"] else 1]
        paragraphs.append(" ".join(text.format(**values).split()))
    return subject.format(**values), paragraphs


def render_follow_up(lead: Lead, stage: FollowUpStage, knowledge: KnowledgeBase, now: datetime) -> FollowUpMessage:
    """The template follow-up for one lead and stage, through the gate: a lead field the gate would
    not let a draft say is left out (the generic form is used), never sent as written."""
    facts = LeadFacts.of(lead, now)
    points = knowledge.proof_points
    options = _TEMPLATES[stage]
    template = options[_stable_choice(stage, lead.id, len(options))]
    values = {
        "first_name": facts.first_name,
        "company": facts.company,
        "when": describe_elapsed(facts.last_contacted, now),
        "proof_point": points[_stable_choice(stage, lead.id, len(points), "proof")] if points else "",
        "call_to_action": knowledge.call_to_action,
    }
    left_out = facts.left_out
    for attempt in (facts, replace(facts, first_name="", company="")):
        values |= {"first_name": attempt.first_name, "company": attempt.company}
        subject, paragraphs = _fill(template, values)
        verdict = check_follow_up(subject, "\n\n".join(paragraphs), lead, stage, knowledge, now, facts=attempt)
        if verdict.ok:
            break
        left_out += (f"name and company: the personal form failed the gate ({verdict.problems[0]})",)
    return compose(subject, paragraphs, knowledge, GENERATOR_TEMPLATE, problems=verdict.problems, left_out=left_out)


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
