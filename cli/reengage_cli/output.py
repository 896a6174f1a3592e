"""What the CLI prints: progress bars, campaign summaries, previews, statistics, captured emails."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from reengage.domain.leads import FollowUpPolicy, FollowUpStage, Lead
from reengage.domain.messages import GENERATOR_AI, FollowUpMessage
from reengage.services.imports import ImportProgress
from reengage.services.scheduler import CampaignSummary
from reengage.services.sender import SKIPPED, SendOutcome
from reengage_cli.drain import DrainReport
from reengage_cli.emulator.outbox import CapturedEmail

EXIT_OK, EXIT_REJECTED, EXIT_ERROR = 0, 1, 2


def say(text: str = "") -> None:
    print(text, flush=True)


def progress_bar(label: str) -> Callable[[int, int], None]:
    """A one-line progress bar on stderr when it is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        return lambda done, total: None

    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // total if total else width
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


class ImportProgressLine:
    """`reengage import`'s progress on stderr when it is a terminal (silent otherwise): rows read,
    leads written, problems, and the rate. The total is not known: the file is read as it is written."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.shown = self.stream.isatty()
        self.started = time.monotonic()

    def __call__(self, progress: ImportProgress) -> None:
        if not self.shown:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.stream.write(
            f"\rimporting: {progress.rows_read:,} rows read, {progress.written:,} written,"
            f" {progress.rejected:,} problems, {progress.written / elapsed:,.0f} leads/s "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def print_campaign(summary: CampaignSummary, drained: DrainReport | None, dry_run: bool) -> None:
    outcomes = drained.outcomes if drained else []
    kinds = Counter(outcome.kind for outcome in outcomes)
    reasons = Counter(outcome.reason.split(":")[0] for outcome in outcomes if outcome.kind == SKIPPED)
    say()
    say("RE-ENGAGEMENT CAMPAIGN COMPLETE" + (" (dry run: nothing claimed or sent)" if dry_run else ""))
    say(f"  Campaign:            {summary.campaign_id}")
    say(f"  Eligible leads:      {summary.eligible}")
    say(f"  Marked for re-engagement: {len(summary.would_send) if dry_run else summary.marked}")
    if summary.reclaimed:
        say(f"    of which abandoned claims taken over: {summary.reclaimed}")
    if summary.left_for_next_run:
        say(f"  Left for the next run (limit): {summary.left_for_next_run}")
    if summary.stopped_at_deadline:
        say("  Stopped before the deadline: the rest stays due for the next run")
    if summary.lost_race:
        say(f"  Claimed by another run: {summary.lost_race}")
    if summary.enqueue_failed:
        say(f"  Not enqueued (released for the next run): {summary.enqueue_failed}")
    if drained is None:
        if not dry_run:
            say("  Sending: left to SenderFunction (queue not drained)")
        return
    say(f"  Messages sent:       {kinds['sent']}")
    say(f"  Skipped:             {kinds['skipped']}")
    for reason, count in sorted(reasons.items()):
        say(f"    {reason}: {count}")
    say(f"  Failed:              {kinds['failed'] + drained.failed_records}")
    if drained.failed_records:
        say(f"    {drained.failed_records} will be retried from the queue")
    if kinds["in_doubt"]:
        say(f"  Possibly sent (kept locked, never re-sent): {kinds['in_doubt']}")


def print_outcome(index: int, total: int, outcome: SendOutcome, names: dict[str, str]) -> None:
    who = names.get(outcome.lead_id, outcome.lead_id)
    prefix = f"  [{index}/{total}] {who}"
    if outcome.kind == "sent":
        fallback = f": {outcome.fallback_reason}" if outcome.fallback_reason else ""
        say(f"{prefix}: re-engaged ({outcome.stage}, {outcome.generator}{fallback})")
    elif outcome.kind == "skipped":
        say(f"{prefix}: skipped - {outcome.reason}")
    else:
        say(f"{prefix}: {outcome.kind} - {outcome.reason}")


def generator_label(message: FollowUpMessage) -> str:
    if message.generator == GENERATOR_AI:
        return f"ai ({message.model})"
    return f"template ({message.fallback_reason})" if message.fallback_reason else "template"


def model_use(message: FollowUpMessage) -> str:
    """Whether the model was called for this message, and what it cost (tokens as the server reported)."""
    if not message.ai_calls:
        return "not called"
    used = "draft used" if message.generator == GENERATOR_AI else "draft not used"
    return (
        f"called {message.ai_calls}x ({message.model}), {message.prompt_tokens} prompt + "
        f"{message.completion_tokens} completion tokens; {used}"
    )


def print_preview(lead: Lead, stage: FollowUpStage, message: FollowUpMessage) -> None:
    """One message as it would be sent, with the generator, the model's cost and the gate's verdict."""
    say(f"To:        {lead.name} <{lead.email}>")
    say(f"Stage:     {stage.value}")
    say(f"Generator: {generator_label(message)}")
    say(f"Model:     {model_use(message)}")
    say("Quality:   " + ("passed" if not message.problems else "FAILED (not sent): " + "; ".join(message.problems)))
    for reason in message.left_out:
        say(f"Left out:  {reason}")
    say(f"Subject:   {message.subject}")
    say()
    say(message.text.rstrip())


def print_model_cost(messages: list[FollowUpMessage]) -> None:
    """What writing these messages cost: model calls and tokens."""
    calls = sum(message.ai_calls for message in messages)
    prompt = sum(message.prompt_tokens for message in messages)
    completion = sum(message.completion_tokens for message in messages)
    if not calls:
        say("Model: not called (templates only)")
    else:
        say(f"Model: {calls} calls, {prompt} prompt + {completion} completion tokens")


def print_next_send(lead: Lead, policy: FollowUpPolicy, now: datetime) -> None:
    """The lead's zone (and where it came from) and its next send time, local and UTC."""
    zone = policy.zone(lead)
    say(f"Time zone: {zone.zone} (from {zone.source}{', country ' + zone.country if zone.country else ''})")
    if lead.paused_until and policy.paused(lead, now):
        say(f"Paused:    until {lead.paused_until} (a colleague at the same company responded)")
    if not policy.standing(lead).due or not lead.last_contacted:
        return
    due_at = policy.due_at(lead, not_before=now)
    local = due_at.astimezone(zone.zoneinfo)
    say(f"Next send: {local:%a %Y-%m-%d %H:%M %Z} local, {due_at:%Y-%m-%d %H:%M} UTC")


def print_statistics(stats: dict[str, Any]) -> None:
    say("Current re-engagement status:")
    say(f"  Leads:                          {stats['total_leads']}")
    say(f"  Eligible for re-engagement:     {stats['eligible_for_reengagement']}")
    say(f"  Waiting for their next follow-up: {stats['scheduled_waiting']}")
    say(f"  Recent re-engagements (7 days): {stats['recent_reengagements']}")
    say(f"  Re-engagement success rate:     {stats['reengagement_success_rate']:.1%}")
    say(f"  Sends in progress:              {stats['sends_in_progress']}")
    if "backlog" in stats:
        backlog = stats["backlog"]
        say(f"  Backlog: due now, not yet claimed: {backlog['due_now']}; claimed, not yet sent: {backlog['claimed']}")
    say(f"  Possibly sent (review, never re-sent): {stats['sends_possibly_sent']}")
    say(f"  Set aside, unreadable (invalid_lead_data): {stats['invalid_lead_data']}")
    say("  By follow-up stage:   " + (", ".join(f"{k}: {v}" for k, v in stats["by_followup_stage"].items()) or "none"))
    say("  By response status:   " + (", ".join(f"{k}: {v}" for k, v in stats["by_response_status"].items()) or "none"))


def print_email(mail: CapturedEmail) -> None:
    say("-" * 72)
    say(f"To:      {mail.to}")
    say(f"From:    {mail.sender}")
    say(f"Subject: {mail.subject}")
    say()
    say(mail.text.rstrip())
