"""The `reengage` command line: run campaigns, import leads, inspect state, run the local emulator.

Works against whatever endpoint the environment selects (AWS, or an emulator through
AWS_ENDPOINT_URL). Errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import logging
import os
import shlex
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from reengage import aws
from reengage.clock import format_time, parse_time, utc_now
from reengage.feedback import UnknownLeadError, record_response
from reengage.knowledge import KnowledgeBase, KnowledgeBaseError, load_knowledge_base
from reengage.lead_store import DynamoLeadStore
from reengage.leads import FollowUpStage, Lead, ResponseStatus, ScheduleState, next_stage
from reengage.messages import GENERATOR_AI, FollowUpMessage
from reengage.ports import InvalidLeadDataError, TransientError
from reengage.quality import check_follow_up
from reengage.replies import handle_reply
from reengage.scheduler import CampaignRequest, CampaignSummary, InvalidCampaignRequestError, run_scheduler
from reengage.sender import SKIPPED, FollowUpSender, SendOutcome
from reengage.settings import Settings, SettingsError
from reengage.stats import statistics as stats_from_counters
from reengage.stats import tally
from reengage.stats_store import DynamoStatsStore
from reengage.stats_stream import catch_up
from reengage.upkeep import cleanup, migrate
from reengage_cli import emulator, health, report
from reengage_cli.cfn import TemplateError
from reengage_cli.dlq import list_dead_letters, redrive
from reengage_cli.drain import DrainReport, drain_queue, queue_depth
from reengage_cli.importer import ImportFileError, import_leads

EXIT_OK, EXIT_REJECTED, EXIT_ERROR = 0, 1, 2
SAMPLE_LEADS = Path(__file__).parent / "data" / "sample_leads.jsonl"
# The sample's times are written relative to this moment; the demo shifts them to now.
SAMPLE_REFERENCE_TIME = datetime.fromisoformat("2026-11-24T09:00:00+00:00")


class CliError(Exception):
    """A problem the user can fix; printed as one line."""


# -- output -----------------------------------------------------------------
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


# -- configuration ------------------------------------------------------------
def load_settings(env: dict[str, str]) -> Settings:
    """Settings from the environment; against an emulator, missing names come from the template."""
    merged = dict(env)
    if emulator.endpoint_override(env) and not (env.get("LEADS_TABLE_NAME") and env.get("QUEUE_URL")):
        try:
            provisioned = emulator.provision(create=False)
        except ClientError as error:
            raise CliError(
                f"the emulator at {env['AWS_ENDPOINT_URL']} has no reengage resources; run `reengage bootstrap` first"
            ) from error
        for name, value in provisioned.environment.items():
            merged.setdefault(name, value)
    return Settings.from_env(merged)


def parameter_overrides(pairs: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise CliError(f"--parameter {pair!r}: expected NAME=VALUE")
        overrides[name] = value
    return overrides


def require_endpoint(command: str) -> str:
    endpoint = emulator.endpoint_override(os.environ)
    if not endpoint:
        raise CliError(
            f"`reengage {command}` only works against an emulator: set AWS_ENDPOINT_URL "
            "(see `reengage local`); in AWS the resources come from `sam deploy`"
        )
    return endpoint


# -- commands -----------------------------------------------------------------
def cmd_bootstrap(args: argparse.Namespace) -> int:
    endpoint = require_endpoint("bootstrap")
    provisioned = emulator.provision(parameter_overrides(args.parameter))
    say(f"Provisioned on {endpoint}:")
    for logical, physical in sorted(provisioned.resources.items()):
        say(f"  {logical}: {physical}")
    return EXIT_OK


def _environment(shell_env: dict[str, str]) -> dict[str, str]:
    values = load_settings(shell_env).to_env()
    endpoint = emulator.endpoint_override(shell_env)
    if endpoint:
        values["AWS_ENDPOINT_URL"] = endpoint
    return values


def _for_docker(url: str) -> str:
    # `sam local invoke` runs the function in a container: loopback there is the container itself.
    parts = urlsplit(url)
    if parts.hostname in {"127.0.0.1", "localhost"}:
        return urlunsplit(parts._replace(netloc=f"host.docker.internal:{parts.port}"))
    return url


def cmd_env(args: argparse.Namespace) -> int:
    values = _environment(dict(os.environ))
    if args.format == "sam-json":
        if "AWS_ENDPOINT_URL" in values:
            values["AWS_ENDPOINT_URL"] = _for_docker(values["AWS_ENDPOINT_URL"])
        say(json.dumps({"Parameters": values}, indent=2))
    else:
        for name, value in values.items():
            say(f"export {name}={shlex.quote(value)}")
    return EXIT_OK


def cmd_local(args: argparse.Namespace) -> int:
    server = emulator.LocalEmulator(host=args.host, port=args.port)
    endpoint = server.start()
    try:
        emulator.use_endpoint(endpoint, os.environ)
        os.environ.update(emulator.provision().environment)  # the local Function URL reads these
        say(f"reengage emulator listening on {endpoint} (Ctrl-C to stop). In another shell:")
        say(f"export AWS_ENDPOINT_URL={endpoint}")
        for name, value in emulator.DUMMY_CREDENTIALS.items():
            say(f"export {name}={value}")
        say(f"export AWS_DEFAULT_REGION={os.environ['AWS_DEFAULT_REGION']}")
        say("then: reengage import FILE; reengage run; reengage outbox")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("stopped")
    finally:
        server.stop()
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    settings = load_settings(dict(os.environ))
    report = import_leads(
        aws.lead_store(settings), Path(args.file), utc_now(), settings.max_followups, progress_bar("importing")
    )
    say(f"Imported {report.created + report.updated} leads ({report.created} new, {report.updated} updated).")
    if report.rejected:
        say(f"Rejected {report.rejected_rows} rows:")
        for error in report.rejected:
            say(f"  {error}")
        return EXIT_REJECTED
    return EXIT_OK


def _sender(settings: Settings, store: DynamoLeadStore) -> FollowUpSender:
    return FollowUpSender(
        store,
        aws.ses_mailer(settings),
        settings,
        writer=aws.message_writer(settings),
        unsubscribe=aws.unsubscribe_links(settings),
    )


def generator_label(message: FollowUpMessage) -> str:
    if message.generator == GENERATOR_AI:
        return f"ai, {message.model}, {message.prompt_tokens}+{message.completion_tokens} tokens"
    return f"template ({message.fallback_reason})" if message.fallback_reason else "template"


def print_preview(lead: Lead, stage: FollowUpStage, message: FollowUpMessage, knowledge: KnowledgeBase) -> None:
    """One message as it would be sent, with the generator and the quality-gate verdict."""
    body = message.text.split("\n\nBest regards,")[0]
    verdict = check_follow_up(message.subject, body, lead, stage, knowledge)
    say(f"To:        {lead.name} <{lead.email}>")
    say(f"Stage:     {stage.value}")
    say(f"Generator: {generator_label(message)}")
    say("Quality:   " + ("passed" if verdict.ok else "FAILED: " + "; ".join(verdict.problems)))
    say(f"Subject:   {message.subject}")
    say()
    say(message.text.rstrip())


def cmd_preview(args: argparse.Namespace) -> int:
    settings = load_settings(dict(os.environ))
    lead = aws.lead_store(settings).get(args.lead_id)
    if lead is None:
        raise CliError(f"no lead with id {args.lead_id!r}")
    stage = FollowUpStage(args.stage) if args.stage else next_stage(lead.follow_up_stage, settings.max_followups).stage
    if stage is None:
        raise CliError(
            f"lead {lead.id} has finished its sequence ({lead.follow_up_stage}); pass --stage to preview one"
        )
    writer = aws.message_writer(settings)
    writer.start_batch(None)
    print_preview(lead, stage, writer.write(lead, stage, utc_now()), load_knowledge_base(settings.knowledge_base))
    return EXIT_OK


def run_campaign(args: argparse.Namespace, settings: Settings) -> tuple[CampaignSummary, DrainReport | None]:
    store = aws.lead_store(settings)
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
    now = utc_now()
    summary = run_scheduler(store, aws.follow_up_queue(settings), request, settings, now)
    if request.dry_run:
        say(f"Would send {len(summary.would_send)} follow-ups:")
        writer, knowledge = aws.message_writer(settings), load_knowledge_base(settings.knowledge_base)
        writer.start_batch(None)
        for lead_id, stage in summary.would_send:
            lead = store.get(lead_id)
            if lead is not None:
                say("-" * 72)
                print_preview(lead, stage, writer.write(lead, stage, now), knowledge)
        return summary, None
    if args.no_drain or not emulator.endpoint_override(os.environ):
        return summary, None
    return summary, send_queued(settings, store)


def send_queued(settings: Settings, store: DynamoLeadStore) -> DrainReport:
    """Run the sender over the queue until it is empty, printing each lead's outcome."""
    sqs = aws.client("sqs")
    say(f"Processing {queue_depth(sqs, settings.queue_url)} queued follow-ups")
    drained = drain_queue(sqs, settings.queue_url, _sender(settings, store), progress_bar("sending"))
    names = {}
    for outcome in drained.outcomes:
        lead = store.get(outcome.lead_id)
        names[outcome.lead_id] = f"{lead.name} ({lead.email})" if lead else outcome.lead_id
    for index, outcome in enumerate(drained.outcomes, start=1):
        print_outcome(index, len(drained.outcomes), outcome, names)
    return drained


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings(dict(os.environ))
    summary, drained = run_campaign(args, settings)
    print_campaign(summary, drained, summary.dry_run)
    failed = drained is not None and (drained.failed_records or any(o.kind == "failed" for o in drained.outcomes))
    return EXIT_REJECTED if failed else EXIT_OK


def _counters(settings: Settings) -> DynamoStatsStore:
    """The statistics counters, brought up to date first when running against an emulator."""
    stats = aws.stats_store(settings)
    if emulator.endpoint_override(os.environ):
        # No CountersFunction runs locally: read the leads table's stream here instead.
        table = aws.client("dynamodb").describe_table(TableName=settings.leads_table_name)["Table"]
        if table.get("LatestStreamArn"):
            catch_up(aws.client("dynamodbstreams"), table["LatestStreamArn"], stats, aws.lead_store(settings).read_raw)
    return stats


def statistics(settings: Settings) -> dict[str, Any]:
    """The statistics from the counters: one GetItem and one Query, whatever the table's size."""
    now = utc_now()
    return stats_from_counters(*_counters(settings).read(now), now)


def rebuild_statistics(settings: Settings) -> None:
    """Recompute every counter from the table once (after a bulk load by another system)."""
    stats = _counters(settings)
    stats.replace(*tally(aws.lead_store(settings).scan()))


def cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings(dict(os.environ))
    if args.rebuild:
        rebuild_statistics(settings)
        if not args.json:
            say("Counters rebuilt from the table.")
    stats = statistics(settings)
    if args.json:
        say(json.dumps(stats, indent=2))
        return EXIT_OK
    print_statistics(stats)
    return EXIT_OK


def print_statistics(stats: dict[str, Any]) -> None:
    say("Current re-engagement status:")
    say(f"  Leads:                          {stats['total_leads']}")
    say(f"  Eligible for re-engagement:     {stats['eligible_for_reengagement']}")
    say(f"  Waiting for their next follow-up: {stats['scheduled_waiting']}")
    say(f"  Recent re-engagements (7 days): {stats['recent_reengagements']}")
    say(f"  Re-engagement success rate:     {stats['reengagement_success_rate']:.1%}")
    say(f"  Sends in progress:              {stats['sends_in_progress']}")
    say(f"  Possibly sent (review, never re-sent): {stats['sends_possibly_sent']}")
    say("  By follow-up stage:   " + (", ".join(f"{k}: {v}" for k, v in stats["by_followup_stage"].items()) or "none"))
    say("  By response status:   " + (", ".join(f"{k}: {v}" for k, v in stats["by_response_status"].items()) or "none"))


def cmd_stats(args: argparse.Namespace) -> int:
    settings = load_settings(dict(os.environ))
    now = utc_now()
    totals, days = _counters(settings).read(now, days_back=30)
    figures = stats_from_counters(totals, days, now)
    svg = report.render_svg(figures, totals, days, now)
    path = Path(args.plot)
    if path.suffix.lower() not in {".svg", ".html"}:
        raise CliError(f"--plot {path}: use a .svg or .html file")
    path.write_text(report.render_html(svg, figures) if path.suffix.lower() == ".html" else svg, encoding="utf-8")
    say(f"Wrote {path}")
    return EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    checks: list[tuple[str, bool, str]] = []
    try:
        settings = load_settings(dict(os.environ))
        checks.append(("configuration", True, f"table {settings.leads_table_name}, sender {settings.sender_email}"))
    except (SettingsError, CliError) as error:
        checks.append(("configuration", False, str(error)))
        settings = None
    if settings is not None:
        checks.extend(health.resource_checks(settings))
    healthy = all(ok for _, ok, _ in checks)
    for name, ok, detail in checks:
        say(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    say("healthy" if healthy else "UNHEALTHY")
    return EXIT_OK if healthy else EXIT_REJECTED


def cmd_mark(args: argparse.Namespace) -> int:
    settings = load_settings(dict(os.environ))
    status = ResponseStatus(args.status)
    try:
        changed = record_response(
            aws.lead_store(settings), args.lead_id, status, "cli", utc_now(), settings.max_followups
        )
    except (UnknownLeadError, TimeoutError) as error:
        raise CliError(str(error)) from error
    if not changed:
        say(f"Lead {args.lead_id} already has response status {status.value}.")
    elif status is ResponseStatus.NO_RESPONSE:
        say(f"Lead {args.lead_id} is back to {status.value}: its sequence resumes where it stopped.")
    else:
        say(f"Lead {args.lead_id} marked {status.value}: no further follow-ups.")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings(dict(os.environ))
    report = migrate(aws.lead_store(settings), settings.max_followups, utc_now())
    say(f"Examined {report.examined} leads, updated {report.updated}, conflicts {report.conflicts}.")
    for problem in report.problems:
        say(f"  {problem}")
    if report.conflicts:
        say("  Some leads changed while migrating: run `reengage migrate` again.")
    return EXIT_REJECTED if report.problems or report.conflicts else EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    if args.days < 1:
        raise CliError("--days must be at least 1")
    settings = load_settings(dict(os.environ))
    report = cleanup(aws.lead_store(settings), settings.max_followups, args.days, utc_now())
    say(f"Cleared {report.released} eligibility flags older than {args.days} days.")
    if report.sends_in_doubt:
        say(f"{len(report.sends_in_doubt)} sends in doubt need a review (never re-sent automatically):")
        for lead_id in report.sends_in_doubt:
            say(f"  {lead_id}")
    return EXIT_OK


def _dead_letter_queue(settings: Settings) -> str:
    url = emulator.dead_letter_queue_url(settings.queue_url)
    if url is None:
        raise CliError(f"{settings.queue_url} has no dead-letter queue (redrive policy)")
    return url


def cmd_dlq(args: argparse.Namespace) -> int:
    settings = load_settings(dict(os.environ))
    sqs, dlq_url = aws.client("sqs"), _dead_letter_queue(settings)
    if args.action == "redrive":
        moved = redrive(sqs, dlq_url, settings.queue_url, args.max)
        say(f"Moved {moved} follow-up requests back to the queue; `reengage run` (locally) or the sender takes them.")
        return EXIT_OK
    letters = list_dead_letters(sqs, dlq_url, args.max)
    if args.json:
        say(json.dumps([letter.__dict__ for letter in letters], indent=2))
        return EXIT_OK
    say(f"{len(letters)} follow-up requests in the dead-letter queue" + (" (showing the first)" if letters else ""))
    for letter in letters:
        say(f"  {letter.message_id}  lead {letter.lead_id}  {letter.stage}  received {letter.receive_count} times")
    return EXIT_OK


def cmd_outbox(args: argparse.Namespace) -> int:
    captured = emulator.outbox(require_endpoint("outbox"))
    if args.json:
        say(json.dumps([mail.__dict__ for mail in captured], indent=2))
        return EXIT_OK
    say(f"{len(captured)} emails captured by the emulator")
    for mail in captured:
        print_email(mail)
    return EXIT_OK


def print_email(mail: emulator.CapturedEmail) -> None:
    say("-" * 72)
    say(f"To:      {mail.to}")
    say(f"From:    {mail.sender}")
    say(f"Subject: {mail.subject}")
    say()
    say(mail.text.rstrip())


def cmd_demo(args: argparse.Namespace) -> int:
    with emulator.LocalEmulator() as server:
        emulator.use_endpoint(server.endpoint, os.environ)
        for name in ("LEADS_TABLE_NAME", "QUEUE_URL"):
            os.environ.pop(name, None)
        say(f"Local AWS emulator on {server.endpoint}; provisioning from template.yaml")
        provisioned = emulator.provision()
        os.environ.update(provisioned.environment)
        settings = Settings.from_env(os.environ)
        store = aws.lead_store(settings)

        sample = _rebased_sample(Path(args.leads) if args.leads else SAMPLE_LEADS)
        report = import_leads(store, sample, utc_now(), settings.max_followups)
        say(f"Imported {report.created} sample leads ({report.rejected_rows} rejected)")
        for error in report.rejected:
            say(f"  {error}")
        say()
        print_statistics(statistics(settings))
        say()

        # A CRM marks one claimed lead as converted between selection and sending:
        # the sender must notice and skip it.
        summary = run_scheduler(
            store, aws.follow_up_queue(settings), CampaignRequest(settings.days_between_followups), settings, utc_now()
        )
        converted = _convert_one_claimed(store)
        if converted:
            say(f"(demo) {converted} replied and converted after being claimed: it must be skipped")
        drained = send_queued(settings, store)
        print_campaign(summary, drained, dry_run=False)
        say()
        say("Messages sent:")
        for mail in emulator.outbox(server.endpoint):
            print_email(mail)
        say("-" * 72)
        say()
        _demo_feedback(settings, store, server.endpoint)
        say()
        print_statistics(statistics(settings))
        again = run_scheduler(
            store, aws.follow_up_queue(settings), CampaignRequest(settings.days_between_followups), settings, utc_now()
        )
        say()
        say(f"Running the campaign again right away claims {again.marked} leads: nothing is sent twice.")
    return EXIT_OK


def _demo_feedback(settings: Settings, store: DynamoLeadStore, endpoint: str) -> None:
    """One lead unsubscribes with the one-click link, another replies: both sequences stop."""
    mails = [mail for mail in emulator.outbox(endpoint) if "List-Unsubscribe" in mail.headers]
    if len(mails) < 2:
        return
    url = mails[0].headers["List-Unsubscribe"].split(">")[0].lstrip("<")
    request = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the local emulator
        say(f"(demo) {mails[0].to} clicked one-click unsubscribe: HTTP {response.status}, no redirect")
    replier = email.utils.parseaddr(mails[1].to)[1]
    lead_id = store.lead_for_email(replier)
    lead = store.get(lead_id) if lead_id else None
    sent = [entry for entry in (lead.engagement_history if lead else []) if entry.get("message_id")]
    if lead is None or not sent:
        return
    reply = (
        f"From: {mails[1].to}\r\nTo: {settings.sender_email}\r\nSubject: Re: {mails[1].subject}\r\n"
        f"In-Reply-To: <{sent[-1]['message_id']}@email.amazonses.com>\r\n\r\n"
        "Thanks for following up. Sounds interesting - let's talk next week.\r\n"
    )
    outcome = handle_reply(reply.encode(), store, utc_now(), settings.max_followups)
    say(f'(demo) {mails[1].to} replied "let\'s talk next week": {outcome}')
    for address in (email.utils.parseaddr(mails[0].to)[1], replier):
        found = store.lead_for_email(address)
        stopped = store.get(found) if found else None
        if stopped is not None:
            state = "sequence stopped" if stopped.schedule_state is None else f"still {stopped.schedule_state}"
            say(f"       {stopped.name}: response status {stopped.response_status}, {state}")


def _rebased_sample(path: Path) -> Path:
    """The sample file with its times moved so 'now' keeps the same mix of due and not-due leads."""
    shift = utc_now() - SAMPLE_REFERENCE_TIME
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        for name in ("last_contacted", "created_at", "updated_at"):
            if row.get(name):
                row[name] = format_time(parse_time(row[name]) + shift)
        lines.append(json.dumps(row))
    handle = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8")
    with handle:
        handle.write("\n".join(lines) + "\n")
    return Path(handle.name)


def _convert_one_claimed(store: DynamoLeadStore) -> str | None:
    for entry in store.schedule(ScheduleState.CLAIMED, "9999"):
        lead = store.get(entry.lead_id)
        if lead is None:
            continue
        store.put(replace(lead, response_status="Converted", updated_at=format_time(utc_now())), previous=lead)
        return lead.name or lead.id
    return None


# -- entry point ----------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", help="log what happens, step by step")
    parser = argparse.ArgumentParser(prog="reengage", description=__doc__.splitlines()[0], parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    demo = command("demo", cmd_demo, "start an emulator, import sample leads, run a campaign, show the results")
    demo.add_argument("--leads", help="a .jsonl file to use instead of the bundled sample")
    local = command("local", cmd_local, "run the emulator in the foreground with the template's resources")
    local.add_argument("--port", type=int, default=4566)
    local.add_argument("--host", default="127.0.0.1", help="0.0.0.0 lets `sam local invoke` containers reach it")
    boot = command("bootstrap", cmd_bootstrap, "create the template's stateful resources on AWS_ENDPOINT_URL")
    boot.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE", help="template parameter")
    env = command("env", cmd_env, "print the environment the functions run with against this endpoint")
    env.add_argument("--format", choices=["shell", "sam-json"], default="shell")
    imp = command("import", cmd_import, "upsert leads from a .jsonl or .csv file")
    imp.add_argument("file")
    run = command("run", cmd_run, "run one campaign: schedule, then (locally) send")
    run.add_argument("--days-since-contact", type=int, default=None)
    run.add_argument("--limit", type=int, default=None)
    run.add_argument("--dry-run", action="store_true", help="claim nothing, send nothing; show what would be sent")
    run.add_argument("--no-drain", action="store_true", help="only enqueue; leave sending to SenderFunction")
    status = command("status", cmd_status, "re-engagement statistics (from counters, no table scan)")
    status.add_argument("--json", action="store_true")
    status.add_argument("--rebuild", action="store_true", help="recompute the counters from the table once")
    plot = command("stats", cmd_stats, "draw the funnel and the sends per day (what the dashboard shows)")
    plot.add_argument("--plot", required=True, metavar="FILE", help="an .svg or .html file to write")
    preview = command("preview", cmd_preview, "print the follow-up a lead would get, without sending anything")
    preview.add_argument("lead_id")
    preview.add_argument("--stage", choices=[stage.value for stage in FollowUpStage])
    mark = command("mark", cmd_mark, "set a lead's response status (CRM-driven); any status but No Response stops it")
    mark.add_argument("lead_id")
    mark.add_argument("status", choices=[status.value for status in ResponseStatus], metavar="STATUS")
    command("health", cmd_health, "check configuration, table, queues, SES identity, AI")
    command("migrate", cmd_migrate, "backfill derived attributes on leads written by other systems")
    clean = command("cleanup", cmd_cleanup, "clear eligibility flags left set for more than N days")
    clean.add_argument("--days", type=int, default=30)
    dlq = command("dlq", cmd_dlq, "list the dead-letter queue, or move its messages back to the queue")
    dlq.add_argument("action", choices=["list", "redrive"])
    dlq.add_argument("--max", type=int, default=100, help="at most this many messages")
    dlq.add_argument("--json", action="store_true")
    out = command("outbox", cmd_outbox, "the emails the local emulator captured")
    out.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("botocore", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.handler(args))
    except (CliError, SettingsError, TemplateError, ImportFileError, InvalidLeadDataError, KnowledgeBaseError) as error:
        message = str(error)
    except TransientError as error:
        message = f"AWS is throttling or unavailable, try again: {error}"
    except (ClientError, BotoCoreError, PynamoDBException) as error:
        message = f"AWS call failed: {str(error).splitlines()[0]}"
    except KeyboardInterrupt:
        message = "interrupted"
    except Exception as error:  # noqa: BLE001 - the CLI promises one line, never a traceback
        if args.verbose:
            raise
        message = f"unexpected {type(error).__name__}: {error} (run with --verbose for details)"
    print(f"reengage: error: {message}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
