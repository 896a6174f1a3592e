"""`reengage import`, `mark`, `migrate` and `cleanup`: writing and repairing leads."""

from __future__ import annotations

import argparse
from pathlib import Path

from reengage import wiring
from reengage.domain.clock import utc_now
from reengage.domain.leads import ResponseStatus
from reengage.services.responses import UnknownLeadError, record_response
from reengage.services.upkeep import cleanup, migrate
from reengage_cli.config import CliError, load_settings
from reengage_cli.importer import import_file
from reengage_cli.output import EXIT_OK, EXIT_REJECTED, ImportProgressLine, say


def cmd_import(args: argparse.Namespace) -> int:
    settings = load_settings()
    progress = ImportProgressLine()
    try:
        report = import_file(wiring.stores(settings), Path(args.file), utc_now(), settings.policy, progress)
    finally:
        progress.close()
    say(f"Imported {report.created + report.updated} leads ({report.created} new, {report.updated} updated).")
    if report.zone_sources:
        sources = ", ".join(f"{count} from {source}" for source, count in report.zone_sources.most_common())
        say(f"Time zones (for send windows): {sources} (default: {settings.default_timezone}).")
    if report.notes:
        say(f"Notes ({len(report.notes)}):")
        for note in report.notes:
            say(f"  {note}")
    if report.rejected:
        say(f"Rejected {report.rejected_rows} rows:")
        for error in report.rejected:
            say(f"  {error}")
        return EXIT_REJECTED
    return EXIT_OK


def cmd_mark(args: argparse.Namespace) -> int:
    settings = load_settings()
    status = ResponseStatus(args.status)
    try:
        changed = record_response(wiring.stores(settings), args.lead_id, status, "cli", utc_now(), settings.policy)
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
    settings = load_settings()
    report = migrate(wiring.stores(settings), settings.policy, utc_now())
    say(f"Examined {report.examined} leads, updated {report.updated}, conflicts {report.conflicts}.")
    for problem in report.problems:
        say(f"  {problem}")
    if report.conflicts:
        say("  Some leads changed while migrating: run `reengage migrate` again.")
    return EXIT_REJECTED if report.problems or report.conflicts else EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    if args.days < 1:
        raise CliError("--days must be at least 1")
    settings = load_settings()
    report = cleanup(wiring.stores(settings), settings.policy, args.days, utc_now())
    say(f"Cleared {report.released} eligibility flags older than {args.days} days.")
    if report.sends_in_doubt:
        say(f"{len(report.sends_in_doubt)} sends in doubt need a review (never re-sent automatically):")
        for lead_id in report.sends_in_doubt:
            say(f"  {lead_id}")
    return EXIT_OK
