"""The lead, and the one home of "when is a lead due?": `FollowUpPolicy`.

Plain Python: no AWS imports. The data-access adapters turn DynamoDB items into
`Lead` values; everything here can be tested with in-memory leads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from reengage.domain.clock import InvalidTimeError, format_time, parse_time
from reengage.domain.send_windows import LeadZone, SendWindow, lead_zone


class FollowUpStage(StrEnum):
    FOLLOWUP_1 = "Followup_1"
    FOLLOWUP_2 = "Followup_2"


STAGE_ORDER: tuple[FollowUpStage, ...] = (FollowUpStage.FOLLOWUP_1, FollowUpStage.FOLLOWUP_2)


class ResponseStatus(StrEnum):
    NO_RESPONSE = "No Response"
    INTERESTED = "Interested"
    REJECTED = "Rejected"
    CONVERTED = "Converted"
    REPLIED = "Replied"  # answered, neither clearly interested nor clearly not
    # Stop states the feedback loop sets; any of them ends the sequence.
    UNSUBSCRIBED = "Unsubscribed"
    BOUNCED = "Bounced"
    COMPLAINED = "Complained"


OPEN_RESPONSE_STATUSES = frozenset({"", ResponseStatus.NO_RESPONSE.value})
CONTACTABLE_CONFIDENCE = frozenset({"Real", "Pattern"})
KNOWN_CONFIDENCE = frozenset({"Real", "Pattern", "Guess", "Unknown"})
KNOWN_ENGAGEMENT_STATUSES = frozenset({"New", "Enriched", "Ready", "Sent", "Skipped", "Failed"})
SENT = "Sent"
DEFAULT_ENGAGEMENT_STAGE = "1st degree"


class ScheduleState(StrEnum):
    """Where a lead stands in the sparse schedule index (absent: not schedulable)."""

    DUE = "due"  # waiting for its next follow-up; sort key = the instant it is due (FollowUpPolicy.due_at)
    CLAIMED = "claimed"  # enqueued by a scheduler run; sort key = claim time
    SENDING = "sending"  # a sender holds the send lock; sort key = lock time
    INVALID = "invalid"  # set aside: the item cannot be read as a lead (`reengage status` lists them)


# A lead in one of these states belongs to a run: only the scheduler and the sender move it.
IN_FLIGHT = frozenset({ScheduleState.CLAIMED.value, ScheduleState.SENDING.value})


class SkipReason(StrEnum):
    """Why a lead was not (or no longer) sent a follow-up."""

    NOT_SENT = "engagement_status_not_sent"
    RESPONDED = "responded"
    LOW_CONFIDENCE = "email_confidence_too_low"
    INVALID_EMAIL = "invalid_email"
    SUPPRESSED = "suppressed"
    SEQUENCE_COMPLETE = "sequence_complete"
    UNKNOWN_STAGE = "unknown_follow_up_stage"
    NO_LAST_CONTACTED = "no_last_contacted"
    NOT_DUE_YET = "not_due_yet"
    ALREADY_SENT = "stage_already_sent"
    NOT_CLAIMED = "not_claimed"
    SEND_IN_DOUBT = "send_in_doubt"
    DRY_RUN = "dry_run"
    INVALID_DATA = "invalid_lead_data"
    DAILY_CAP = "daily_send_cap_reached"
    DUPLICATE_ADDRESS = "address_already_contacted"  # another lead with this address had this stage
    OUTSIDE_WINDOW = "outside_send_window"  # its local send window closed before it went out: next window
    COMPANY_PAUSED = "company_paused"  # a colleague responded: paused until `paused_until`
    QUALITY_GATE = "failed_quality_gate"  # not even the generic template passed the gate (knowledge base?)


@dataclass
class Lead:
    id: str
    email: str = ""
    name: str = ""
    company: str = ""
    company_website: str = ""
    # Where the lead works from: an IANA zone and a country (code or English name), both optional.
    timezone: str = ""
    country: str = ""
    engagement_status: str = ""
    engagement_stage: str = DEFAULT_ENGAGEMENT_STAGE
    email_confidence_level: str = ""
    last_contacted: str | None = None
    follow_up_stage: str | None = None
    response_status: str | None = None
    eligible_for_reengagement: bool = False
    suppressed: bool = False
    # Set when someone else at the lead's company responded (the company-wide pause).
    paused_until: str | None = None
    engagement_history: list[dict[str, Any]] = field(default_factory=list)
    created_at: str | None = None
    updated_at: str | None = None
    # Derived by reengage (the sparse schedule index); absent on foreign items.
    schedule_state: str | None = None
    schedule_at: str | None = None
    claim_stage: str | None = None
    # Another system stored the history as text; `reengage migrate` rewrites it as a list.
    history_stored_as_text: bool = False
    # Has a schedule state but is not under it in the (sharded) index; `reengage migrate` files it.
    schedule_unindexed: bool = False
    # Bumped by every write: each write is conditioned on the version it read (0: never written by reengage).
    version: int = 0


@dataclass(frozen=True)
class Verdict:
    """The outcome of the eligibility rules for one lead."""

    stage: FollowUpStage | None
    reason: SkipReason | None = None
    detail: str = ""

    @property
    def due(self) -> bool:
        return self.stage is not None and self.reason is None


@dataclass(frozen=True)
class ScheduleKey:
    """The schedule-index keys of a lead (state and sort key)."""

    state: ScheduleState
    at: str


_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def ascii_domain(domain: str) -> str | None:
    """The domain in ASCII (IDN names as punycode), or None when it is not a valid host name."""
    try:
        encoded = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = encoded.split(".")
    if len(labels) < 2 or len(encoded) > 253:
        return None
    if not all(_DOMAIN_LABEL.match(label) for label in labels):
        return None
    tld = labels[-1]
    if not (tld.isalpha() or tld.lower().startswith("xn--")):
        return None
    return encoded.lower()


def email_problem(address: str) -> str | None:
    """Why an address cannot be mailed, or None when it can.

    SES needs a 7-bit local part; international domains are accepted and sent as punycode.
    """
    if not address:
        return "missing"
    if address != address.strip() or any(ch.isspace() or ord(ch) < 32 for ch in address):
        return "contains white space or control characters"
    if len(address) > 254:
        return "longer than 254 characters"
    if address.count("@") != 1:
        return "must contain exactly one @"
    local, domain = address.split("@")
    if not local or len(local) > 64:
        return "local part must be 1-64 characters"
    if not _LOCAL_PART.match(local):
        return "local part has characters email does not allow"
    if ascii_domain(domain) is None:
        return f"domain {domain!r} is not a valid host name"
    return None


def normalized_address(address: str) -> str:
    """One form per mailbox, for the suppression list and the one-sequence-per-person guard:
    case folded, white space trimmed, an international domain in punycode."""
    local, _, domain = address.strip().rpartition("@")
    if not local:
        return address.strip().lower()
    return f"{local.lower()}@{ascii_domain(domain) or domain.lower()}"


# History is bounded so a lead stays far below DynamoDB's 400 KB item limit: the newest entries are
# kept, and one marker entry counts what was dropped (the ledger keeps every send regardless).
HISTORY_ENTRIES = 50
HISTORY_TRIMMED = "history_trimmed"


def appended_history(history: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """`history` with `entry` added, trimmed to the newest HISTORY_ENTRIES (and the marker)."""
    entries = [*history, entry]
    dropped = sum(int(e.get("dropped", 0)) for e in entries if e.get("outcome") == HISTORY_TRIMMED)
    kept = [e for e in entries if e.get("outcome") != HISTORY_TRIMMED]
    if len(kept) <= HISTORY_ENTRIES and not dropped:
        return entries
    if len(kept) > HISTORY_ENTRIES:
        dropped += len(kept) - HISTORY_ENTRIES
        kept = kept[-HISTORY_ENTRIES:]
    return [{"outcome": HISTORY_TRIMMED, "dropped": dropped}, *kept]


@dataclass(frozen=True)
class FollowUpPolicy:
    """When a lead is due a follow-up, and which one (SPEC §4). Every writer of the schedule asks here.

    `standing` is every rule except time; `due_at` is the instant a standing lead is due: the
    first moment of its local send window at or after its last contact plus the days between
    follow-ups (and after any company-wide pause). That instant is the schedule index's sort
    key, so the scheduler's range query up to `due_cutoff(now)` finds exactly the due leads;
    `due` puts it all together, and `in_window` is what the sender asks just before it sends.
    """

    days_between_followups: int = 7
    max_followups: int = 2
    window: SendWindow | None = None  # None: any time of day, any day
    default_zone: str = "UTC"
    company_pause_days: int = 0  # a colleague's response pauses a lead this long (0 = off)

    def next_stage(self, follow_up_stage: str | None) -> Verdict:
        """The stage a lead would get next, from the stage it already had."""
        current = (follow_up_stage or "").strip()
        if not current:
            index = 0
        elif current in STAGE_ORDER:
            index = STAGE_ORDER.index(FollowUpStage(current)) + 1
        else:
            return Verdict(None, SkipReason.UNKNOWN_STAGE, current)
        if index >= min(self.max_followups, len(STAGE_ORDER)):
            return Verdict(None, SkipReason.SEQUENCE_COMPLETE, current)
        return Verdict(STAGE_ORDER[index])

    def has_next_stage(self, stage: FollowUpStage) -> bool:
        """Whether another follow-up comes after `stage`."""
        return STAGE_ORDER.index(stage) + 1 < min(self.max_followups, len(STAGE_ORDER))

    def standing(self, lead: Lead) -> Verdict:
        """Every rule except time: can this lead still get a follow-up at all?"""
        if lead.engagement_status != SENT:
            return Verdict(None, SkipReason.NOT_SENT, lead.engagement_status or "empty")
        if (lead.response_status or "").strip() not in OPEN_RESPONSE_STATUSES:
            return Verdict(None, SkipReason.RESPONDED, lead.response_status or "")
        if lead.suppressed:
            return Verdict(None, SkipReason.SUPPRESSED)
        if lead.email_confidence_level not in CONTACTABLE_CONFIDENCE:
            return Verdict(None, SkipReason.LOW_CONFIDENCE, lead.email_confidence_level or "empty")
        problem = email_problem(lead.email)
        if problem:
            return Verdict(None, SkipReason.INVALID_EMAIL, problem)
        stage = self.next_stage(lead.follow_up_stage)
        if not stage.due:
            return stage
        if not lead.last_contacted:
            return Verdict(None, SkipReason.NO_LAST_CONTACTED)
        try:
            parse_time(lead.last_contacted)
        except InvalidTimeError as error:
            return Verdict(None, SkipReason.NO_LAST_CONTACTED, str(error))
        return stage

    def zone(self, lead: Lead) -> LeadZone:
        """The lead's time zone and country (for holidays), by the documented inference rule."""
        return lead_zone(
            timezone=lead.timezone,
            country=lead.country,
            email=lead.email,
            website=lead.company_website,
            default_zone=self.default_zone,
        )

    def due_at(self, lead: Lead, not_before: datetime | None = None) -> datetime:
        """The instant a standing lead is due: the first send-window moment at or after its last
        contact + the days between follow-ups, any company-wide pause, and `not_before`."""
        assert lead.last_contacted is not None  # standing() checked it
        earliest = parse_time(lead.last_contacted) + timedelta(days=self.days_between_followups)
        if lead.paused_until:
            try:
                earliest = max(earliest, parse_time(lead.paused_until))
            except InvalidTimeError:
                pass  # written by another system: no pause rather than no follow-up ever
        if not_before is not None:
            earliest = max(earliest, not_before)
        if self.window is None:
            return earliest
        zone = self.zone(lead)
        return self.window.next_opening(earliest, zone.zoneinfo, zone.country)

    def paused(self, lead: Lead, now: datetime) -> bool:
        """Whether a company-wide pause holds the lead at `now`."""
        if not lead.paused_until:
            return False
        try:
            return parse_time(lead.paused_until) > now
        except InvalidTimeError:
            return False

    def in_window(self, lead: Lead, now: datetime) -> bool:
        """Whether `now` is inside the lead's local send window (always, with no window set)."""
        if self.window is None:
            return True
        zone = self.zone(lead)
        return self.window.is_open(now, zone.zoneinfo, zone.country)

    def schedule_key(self, lead: Lead, not_before: datetime | None = None) -> ScheduleKey | None:
        """The schedule-index keys of a lead waiting for a follow-up, else None (not in the index).

        The sort key is `due_at` in canonical UTC, so one range query on the index finds exactly
        the leads due at a moment (`due_cutoff`).
        """
        if not self.standing(lead).due:
            return None
        return ScheduleKey(ScheduleState.DUE, format_time(self.due_at(lead, not_before)))

    def next_due_at(self, lead: Lead, sent: FollowUpStage, contacted_at: str) -> str | None:
        """The sort key of the lead's next follow-up once `sent` went out at `contacted_at`, or None
        when the lead, as it now stands, gets no further follow-up."""
        key = self.schedule_key(replace(lead, follow_up_stage=sent.value, last_contacted=contacted_at))
        return key.at if key else None

    def due_cutoff(self, now: datetime, days_since_contact: int | None = None) -> str:
        """The largest schedule sort key that is due at `now`. A run that asks for another interval
        than the deployment's moves the cut-off by the difference (send windows stay as computed)."""
        days = self.days_between_followups if days_since_contact is None else days_since_contact
        return format_time(now + timedelta(days=self.days_between_followups - days))

    def due(self, lead: Lead, now: datetime, days_since_contact: int | None = None) -> Verdict:
        """All of SPEC §4 for one lead, in its send window: the stage it is due now, or why it is not."""
        verdict = self.standing(lead)
        key = self.schedule_key(lead)
        if not verdict.due or key is None:
            return verdict
        if key.at > self.due_cutoff(now, days_since_contact):
            return Verdict(None, SkipReason.NOT_DUE_YET, f"due {key.at}")
        if not self.in_window(lead, now):
            return Verdict(None, SkipReason.OUTSIDE_WINDOW, f"next window {format_time(self.due_at(lead, now))}")
        return verdict

    def reschedule(self, lead: Lead) -> None:
        """Give a lead that no run holds the schedule keys its state calls for (in place)."""
        if lead.schedule_state in IN_FLIGHT:
            return
        key = self.schedule_key(lead)
        lead.schedule_state, lead.schedule_at = (key.state.value, key.at) if key else (None, None)
        lead.claim_stage = None
        lead.eligible_for_reengagement = False


def days_since(moment: str | None, now: datetime) -> int | None:
    if not moment:
        return None
    try:
        return max(0, (now - parse_time(moment)).days)
    except InvalidTimeError:
        return None
