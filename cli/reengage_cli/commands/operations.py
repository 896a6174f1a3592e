"""`reengage health`, `dlq list|redrive` and `outbox`: operating a deployment (or the emulator)."""

from __future__ import annotations

import argparse
import json

from reengage import wiring
from reengage.settings import Settings, SettingsError
from reengage_cli import health
from reengage_cli.config import CliError, load_settings, require_endpoint
from reengage_cli.dlq import dead_letter_queue_url, list_dead_letters, redrive
from reengage_cli.emulator.outbox import outbox
from reengage_cli.output import EXIT_OK, EXIT_REJECTED, print_email, say


def cmd_health(args: argparse.Namespace) -> int:
    checks: list[tuple[str, bool, str]] = []
    settings: Settings | None = None
    try:
        settings = load_settings()
        checks.append(("configuration", True, f"table {settings.leads_table_name}, sender {settings.sender_email}"))
    except (SettingsError, CliError) as error:
        checks.append(("configuration", False, str(error)))
    if settings is not None:
        checks.extend(health.resource_checks(settings))
    healthy = all(ok for _, ok, _ in checks)
    for name, ok, detail in checks:
        say(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    say("healthy" if healthy else "UNHEALTHY")
    return EXIT_OK if healthy else EXIT_REJECTED


def cmd_dlq(args: argparse.Namespace) -> int:
    settings = load_settings()
    sqs = wiring.client("sqs")
    dlq_url = dead_letter_queue_url(sqs, settings.queue_url)
    if dlq_url is None:
        raise CliError(f"{settings.queue_url} has no dead-letter queue (redrive policy)")
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
    captured = outbox(require_endpoint("outbox"))
    if args.json:
        say(json.dumps([mail.__dict__ for mail in captured], indent=2))
        return EXIT_OK
    say(f"{len(captured)} emails captured by the emulator")
    for mail in captured:
        print_email(mail)
    return EXIT_OK
