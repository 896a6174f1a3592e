"""What the lead's side tells us, decided in one place: replies, SES events, unsubscribes, CRM marks.

Any response other than `No Response` stops the sequence at once: the lead leaves the
schedule (a lead already claimed keeps its claim and the sender, which re-checks the
response status when it locks, skips it). Unsubscribes, hard bounces and complaints
also put the address on the suppression list, so no other lead with that address is
ever mailed either. SES Send/Delivery events confirm sends on the ledger, which is also
what resolves a send recorded as "possibly sent" after a sender died.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from reengage.domain.clock import format_time
from reengage.domain.companies import company_key
from reengage.domain.correlation import is_own_reference, parse_own_reference
from reengage.domain.leads import (
    STAGE_ORDER,
    FollowUpPolicy,
    FollowUpStage,
    Lead,
    ResponseStatus,
    appended_history,
)
from reengage.domain.replies import ReceiptVerdicts, UnreadableReplyError, classify, opts_out, read_reply
from reengage.domain.ses_events import SesEvent
from reengage.domain.unsubscribe import (
    ONE_CLICK_BODY,
    InvalidTokenError,
    Page,
    check_token,
    confirmation_page,
    invalid_link_page,
    not_allowed_page,
    unsubscribed_page,
)
from reengage.ports import InvalidLeadDataError, Stores

logger = logging.getLogger(__name__)

SUPPRESSING = frozenset({ResponseStatus.UNSUBSCRIBED, ResponseStatus.BOUNCED, ResponseStatus.COMPLAINED})
# Outcomes an inbound reply never overwrites (a thank-you from a customer stays Converted).
SETTLED = frozenset({ResponseStatus.CONVERTED, *SUPPRESSING})
# A person's answer pauses their colleagues; a bounce says something about an address, not a company.
PAUSING = frozenset(
    {
        ResponseStatus.INTERESTED,
        ResponseStatus.REJECTED,
        ResponseStatus.CONVERTED,
        ResponseStatus.REPLIED,
        ResponseStatus.UNSUBSCRIBED,
        ResponseStatus.COMPLAINED,
    }
)
_ATTEMPTS = 3


class UnknownLeadError(LookupError):
    """No lead has that id."""


def record_response(
    stores: Stores,
    lead_id: str,
    status: ResponseStatus,
    source: str,
    now: datetime,
    policy: FollowUpPolicy,
    suppress: bool = False,
    keep_settled: bool = False,
    **details: Any,
) -> bool:
    """Set a lead's response status (and suppression: always for SUPPRESSING statuses, and when
    `suppress` is set); False if it already had that status and suppression. With `keep_settled`
    (an inbound reply), a SETTLED status stays; the reply is still noted and may still suppress."""
    suppress = suppress or status in SUPPRESSING
    heard = status
    for _ in range(_ATTEMPTS):
        lead = stores.leads.get(lead_id)
        if lead is None:
            raise UnknownLeadError(f"no lead with id {lead_id!r}")
        if keep_settled and lead.response_status in {settled.value for settled in SETTLED}:
            status = ResponseStatus(lead.response_status)
            details = {**details, "heard": heard.value}
        resumes = status == ResponseStatus.NO_RESPONSE and bool(lead.paused_until)
        if lead.response_status == status.value and (lead.suppressed or not suppress) and not resumes:
            return False
        at = format_time(now)
        updated = replace(
            lead,
            response_status=status.value,
            suppressed=lead.suppressed or suppress,
            engagement_history=appended_history(
                lead.engagement_history,
                {"outcome": "response", "status": status.value, "source": source, "at": at, **details},
            ),
            updated_at=at,
        )
        if status == ResponseStatus.NO_RESPONSE:
            updated.paused_until = None  # `reengage mark ID "No Response"` also lifts a company pause
        policy.reschedule(updated)
        if stores.leads.put(updated, previous=lead):
            if suppress and lead.email:
                stores.suppression.suppress(lead.email, status.value if status in SUPPRESSING else source, at)
            if status in PAUSING:
                pause_colleagues(stores, updated, status, now, policy)
            elif status == ResponseStatus.NO_RESPONSE and lead.response_status in {s.value for s in PAUSING}:
                lift_colleagues_pause(stores, updated, now, policy)  # the response was a mistake: undo its pause
            return True
    raise TimeoutError(f"lead {lead_id} kept changing; try again")


def pause_colleagues(
    stores: Stores, responder: Lead, status: ResponseStatus, now: datetime, policy: FollowUpPolicy
) -> list[str]:
    """The company-wide pause: the open sequences of the responder's colleagues (same company key;
    never a public mail domain) wait `company_pause_days`, recorded in their history. Returns their ids."""
    company = company_key(responder.email, responder.company_website)
    if not company or policy.company_pause_days <= 0:
        return []
    until = format_time(now + timedelta(days=policy.company_pause_days))
    entry = {
        "outcome": "paused",
        "reason": "company_pause",
        "by_lead": responder.id,
        "status": status.value,
        "until": until,
        "at": format_time(now),
    }
    paused = []
    for lead_id in stores.leads.colleagues(company):
        if lead_id != responder.id and _pause(stores, lead_id, until, entry, policy):
            paused.append(lead_id)
    if paused:
        logger.info("company paused", extra={"lead_id": responder.id, "company": company, "paused": len(paused)})
    return paused


def pause_for_changed_status(
    stores: Stores, before: Lead | None, after: Lead, now: datetime, policy: FollowUpPolicy
) -> list[str]:
    """An import or CRM sync that changes a known lead's status to a response pauses its colleagues,
    as `reengage mark` does. A lead first seen with a response is history, not news: no pause."""
    if before is None or before.response_status == after.response_status:
        return []
    try:
        status = ResponseStatus(after.response_status or "")
    except ValueError:
        return []  # an unknown upstream value: stored, never eligible, says nothing about a reply
    return pause_colleagues(stores, after, status, now, policy) if status in PAUSING else []


def lift_colleagues_pause(stores: Stores, responder: Lead, now: datetime, policy: FollowUpPolicy) -> list[str]:
    """Undo the pause a response set: colleagues whose current pause came from this lead resume."""
    company = company_key(responder.email, responder.company_website)
    if not company:
        return []
    entry = {"outcome": "resumed", "reason": "company_pause_lifted", "by_lead": responder.id, "at": format_time(now)}
    lifted = [
        lead_id
        for lead_id in stores.leads.colleagues(company)
        if lead_id != responder.id and _lift(stores, lead_id, responder.id, entry, policy)
    ]
    if lifted:
        logger.info("company pause lifted", extra={"lead_id": responder.id, "company": company, "lifted": len(lifted)})
    return lifted


def _lift(stores: Stores, lead_id: str, responder_id: str, entry: dict[str, Any], policy: FollowUpPolicy) -> bool:
    for _ in range(_ATTEMPTS):
        try:
            lead = stores.leads.get(lead_id)
        except InvalidLeadDataError:
            return False
        pauses = [item for item in lead.engagement_history if item.get("outcome") == "paused"] if lead else []
        if lead is None or not lead.paused_until or not pauses or pauses[-1].get("by_lead") != responder_id:
            return False  # not paused, or paused since by someone else's response
        resumed = replace(
            lead,
            paused_until=None,
            engagement_history=appended_history(lead.engagement_history, entry),
            updated_at=entry["at"],
        )
        policy.reschedule(resumed)
        if stores.leads.put(resumed, previous=lead):
            return True
    logger.warning("company pause not lifted: the lead kept changing", extra={"lead_id": lead_id})
    return False


def _pause(stores: Stores, lead_id: str, until: str, entry: dict[str, Any], policy: FollowUpPolicy) -> bool:
    for _ in range(_ATTEMPTS):
        try:
            lead = stores.leads.get(lead_id)
        except InvalidLeadDataError:
            return False  # set aside for an operator; nothing to pause
        if lead is None or not policy.standing(lead).due or (lead.paused_until or "") >= until:
            return False  # no open sequence, or paused at least as long already
        paused = replace(
            lead,
            paused_until=until,
            engagement_history=appended_history(lead.engagement_history, entry),
            updated_at=entry["at"],
        )
        policy.reschedule(paused)  # a claimed lead keeps its claim: the sender sees the pause and defers it
        if stores.leads.put(paused, previous=lead):
            return True
    logger.warning("company pause not recorded: the lead kept changing", extra={"lead_id": lead_id})
    return False


# -- SES events (FeedbackFunction) ----------------------------------------------
def apply_ses_event(event: SesEvent, stores: Stores, now: datetime, policy: FollowUpPolicy) -> str:
    """Act on one event; returns what was done (for logs and metrics)."""
    if not event.lead_id:
        # No lead tag (another sender's mail, or a tag lost on the way): the ledger knows SES's message id
        # once a Delivery noted it; a bounce or a complaint (which has none before it) names its address.
        found = stores.ledger.lead_for_message(event.message_id) if event.message_id else None
        if found is None and event.kind in ("Bounce", "Complaint"):
            found = next(filter(None, map(stores.leads.find_by_email, event.recipients)), None)
        if found is None:
            return "ignored_untagged"
        event = replace(event, lead_id=found)
    try:
        if event.kind == "Complaint":
            record_response(stores, event.lead_id, ResponseStatus.COMPLAINED, "ses-complaint", now, policy)
            return "complaint"
        if event.kind == "Bounce":
            if not event.hard_bounce:
                return "soft_bounce"
            record_response(
                stores, event.lead_id, ResponseStatus.BOUNCED, "ses-bounce", now, policy, detail=event.detail
            )
            return "hard_bounce"
    except UnknownLeadError:
        return "unknown_lead"
    if event.kind in ("Send", "Delivery", "Reject") and event.stage in STAGE_ORDER:
        return _confirm(event, stores, now)
    return "ignored"


def _confirm(event: SesEvent, stores: Stores, now: datetime) -> str:
    """Send/Delivery: SES took the email. Noted on the ledger record with SES's message id in one
    write, without touching its state, so a sender still recording its send is not disturbed; a send
    already settled as "possibly sent" becomes "sent" (and says so in the lead's history). The lead
    itself is not written: the ledger record is where a delivery shows. Reject: SES dropped an email
    it had accepted."""
    stage = FollowUpStage(event.stage)
    if event.kind == "Reject":
        if stores.ledger.record(event.lead_id, stage) is None:
            return "unknown_send"
        stores.ledger.reject_after_send(event.lead_id, stage)
        _append_history(stores, event, "rejected_by_ses", now)
        return "rejected"
    resolved = stores.ledger.confirm(event.lead_id, stage, event.kind, event.message_id)
    if resolved is None:
        return "unknown_send"
    if resolved:
        _append_history(stores, event, "confirmed_sent", now)
        return "possibly_sent_resolved"
    return event.kind.lower()


def _append_history(stores: Stores, event: SesEvent, outcome: str, now: datetime) -> None:
    for _ in range(_ATTEMPTS):
        lead = stores.leads.get(event.lead_id)
        if lead is None:
            return
        entry = {"stage": event.stage, "at": event.at or format_time(now), "outcome": outcome}
        entry["message_id"] = event.message_id
        updated = replace(
            lead, engagement_history=appended_history(lead.engagement_history, entry), updated_at=format_time(now)
        )
        if stores.leads.put(updated, previous=lead):
            return
    logger.warning("could not record an SES event on the lead", extra={"lead_id": event.lead_id})


# -- inbound replies (ReplyFunction) ---------------------------------------------
def _lead_of(stores: Stores, reference: str, key: bytes) -> str | None:
    """The lead a referenced message went to: our own Message-ID when its HMAC is the one of the
    send the ledger recorded for that lead and stage, or the (unguessable) id SES assigned."""
    if is_own_reference(reference):
        own = parse_own_reference(reference)
        if own is None or not key:
            return None
        record = stores.ledger.record(own.lead_id, own.stage)
        if record is not None and own.signed_by(key, record.locked_at):
            return own.lead_id
        return None
    return stores.ledger.lead_for_message(reference)


def handle_reply(
    raw: bytes,
    stores: Stores,
    now: datetime,
    policy: FollowUpPolicy,
    classifier: Callable[[str], ResponseStatus] = classify,
    key: bytes = b"",
    verdicts: ReceiptVerdicts | None = None,
) -> str:
    """Match an inbound email to its lead and record the answer; returns what happened.

    Matching is strict: the In-Reply-To/References headers must name a message reengage
    sent (our Message-ID with a valid HMAC under `key`, or SES's id of a recorded send);
    only when they name none is the sender's address used, and only when SES authenticated
    it (`verdicts` from the receipt notification, else SES's Authentication-Results header).
    Automatic replies (out of office and the like) never stop a sequence; a reply refusing
    email ("remove me", "unsubscribe") also puts the address on the suppression list.
    """
    try:
        reply = read_reply(raw)
    except UnreadableReplyError as error:
        logger.warning("inbound email refused", extra={"reason": str(error)})
        return "unreadable"
    if reply.automatic:
        return "automatic_ignored"
    lead_id = next((found for found in (_lead_of(stores, ref, key) for ref in reply.referenced_ids) if found), None)
    matched_by = "thread"
    if lead_id is None and reply.sender:
        if not (verdicts or reply.verdicts).authenticated:
            return "unauthenticated_sender"
        lead_id, matched_by = stores.leads.find_by_email(reply.sender), "sender"
    if lead_id is None:
        return "unmatched"
    opted_out = opts_out(reply.text)
    status = ResponseStatus.REJECTED if opted_out else classifier(reply.text)
    try:
        record_response(
            stores,
            lead_id,
            status,
            "reply",
            now,
            policy,
            suppress=opted_out,
            keep_settled=True,
            matched_by=matched_by,
            subject=reply.subject[:200],
        )
    except UnknownLeadError:
        return "unmatched"
    return f"reply_{status.value.lower().replace(' ', '_')}"


# -- one-click unsubscribe (UnsubscribeFunction) ------------------------------------
def unsubscribe_request(
    method: str,
    params: Mapping[str, str],
    body: str,
    key: bytes,
    stores: Stores,
    now: datetime,
    policy: FollowUpPolicy,
) -> Page:
    """GET shows a confirmation form; POST (one-click or the form) unsubscribes. Never redirects."""
    lead_id, token = params.get("lead", ""), params.get("token", "")
    try:
        check_token(lead_id, token, key, now)
    except InvalidTokenError as error:
        return invalid_link_page(error)
    if method == "GET":
        return confirmation_page(lead_id, token)
    if method != "POST":
        return not_allowed_page()
    source = "one-click" if ONE_CLICK_BODY in body else "unsubscribe-page"
    try:
        record_response(stores, lead_id, ResponseStatus.UNSUBSCRIBED, source, now, policy)
    except UnknownLeadError:
        pass  # already deleted: nothing left to email
    return unsubscribed_page()
