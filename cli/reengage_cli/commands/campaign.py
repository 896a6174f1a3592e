"""`reengage run` (one campaign: schedule, then locally send) and `reengage preview`."""

from __future__ import annotations

import argparse
import os
from datetime import datetime

from reengage import wiring
from reengage.domain.clock import InvalidTimeError, format_time, parse_time, utc_now
from reengage.domain.leads import FollowUpStage
from reengage.ports import InvalidLeadDataError, Stores
from reengage.services.scheduler import CampaignRequest, CampaignSummary, InvalidCampaignRequestError, run_scheduler
from reengage.settings import Settings
from reengage_cli.config import CliError, load_settings
from reengage_cli.drain import DrainReport, build_sender, drain_queue, queue_depth
from reengage_cli.emulator import iam, provision
from reengage_cli.emulator.server import endpoint_override
from reengage_cli.output import (
    EXIT_OK,
    EXIT_REJECTED,
    print_campaign,
    print_model_cost,
    print_next_send,
    print_outcome,
    print_preview,
    progress_bar,
    say,
)


def campaign_time(args: argparse.Namespace) -> datetime:
    """`--now TIMESTAMP`, or the current time."""
    if getattr(args, "now", None) is None:
        return utc_now()
    try:
        return parse_time(args.now)
    except InvalidTimeError as error:
        raise CliError(f"--now: {error} (expected e.g. 2026-12-01T08:30:00Z)") from error


def cmd_preview(args: argparse.Namespace) -> int:
    settings = load_settings()
    now = campaign_time(args)
    lead = wiring.stores(settings).leads.get(args.lead_id)
    if lead is None:
        raise CliError(f"no lead with id {args.lead_id!r}")
    stage = FollowUpStage(args.stage) if args.stage else settings.policy.next_stage(lead.follow_up_stage).stage
    if stage is None:
        raise CliError(
            f"lead {lead.id} has finished its sequence ({lead.follow_up_stage}); pass --stage to preview one"
        )
    verdict = settings.policy.due(lead, now)
    writer = wiring.message_writer(settings)
    writer.start_batch(None)
    print_preview(lead, stage, writer.write(lead, stage, now))
    say()
    say("Due now." if verdict.due else f"Not due now: {verdict.reason} {verdict.detail}".rstrip())
    print_next_send(lead, settings.policy, now)
    return EXIT_OK


def run_campaign(args: argparse.Namespace, settings: Settings) -> tuple[CampaignSummary, DrainReport | None]:
    stores = wiring.stores(settings)
    days = args.days_since_contact if args.days_since_contact is not None else settings.days_between_followups
    try:
        request = CampaignRequest.from_event(
            {"days_since_contact": days, "limit": args.limit, "dry_run": args.dry_run}, settings
        )
    except InvalidCampaignRequestError as error:
        raise CliError(str(error)) from error
    say("Starting re-engagement campaign")
    say(f"  Days since contact: {request.days_since_contact}")
    say(f"  Limit: {request.limit if request.limit is not None else 'none'}")
    now = campaign_time(args)
    if args.now is not None:
        say(f"  As if at: {format_time(now)}")
    with iam.acting_as(provision.function_credentials("SchedulerFunction")):  # on an emulator, as its role
        summary = run_scheduler(stores, wiring.follow_up_queue(settings), request, settings, now)
    if request.dry_run:
        say(f"Would send {len(summary.would_send)} follow-ups:")
        writer = wiring.message_writer(settings)
        writer.start_batch(None)
        written = []
        policy, deferred = settings.policy, 0
        for lead_id, stage in summary.would_send:
            lead = stores.leads.get(lead_id)
            if lead is None:
                continue
            if not policy.in_window(lead, now) or policy.paused(lead, now):
                # What the sender would do: hold it for the lead's next window (or the pause's end).
                deferred += 1
                say(f"{lead_id}: due, but outside its send window now: deferred to its next one")
                continue
            say("-" * 72)
            written.append(writer.write(lead, stage, now))
            print_preview(lead, stage, written[-1])
        say("-" * 72)
        if deferred:
            say(f"{deferred} of them would be deferred to their next send window, {len(written)} sent now")
        print_model_cost(written)
        return summary, None
    if args.no_drain or not endpoint_override(os.environ):
        return summary, None
    return summary, send_queued(settings, stores, now if args.now is not None else None)


def send_queued(settings: Settings, stores: Stores, now: datetime | None = None) -> DrainReport:
    """Run the sender over the queue until it is empty (as if at `now`), printing each lead's outcome."""
    sqs = wiring.client("sqs")
    say(f"Processing {queue_depth(sqs, settings.queue_url)} queued follow-ups")
    sender = build_sender(settings)
    if now is not None:
        sender.clock = lambda: now
    with iam.acting_as(provision.function_credentials("SenderFunction")):
        drained = drain_queue(sqs, settings.queue_url, sender, progress_bar("sending"))
    names = {}
    for outcome in drained.outcomes:
        try:
            lead = stores.leads.get(outcome.lead_id)
        except InvalidLeadDataError:
            lead = None  # set aside by the sender; the outcome says why
        names[outcome.lead_id] = f"{lead.name} ({lead.email})" if lead else outcome.lead_id
    for index, outcome in enumerate(drained.outcomes, start=1):
        print_outcome(index, len(drained.outcomes), outcome, names)
    return drained


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings()
    summary, drained = run_campaign(args, settings)
    print_campaign(summary, drained, summary.dry_run)
    failed = drained is not None and (drained.failed_records or any(o.kind == "failed" for o in drained.outcomes))
    return EXIT_REJECTED if failed else EXIT_OK
