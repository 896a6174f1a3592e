"""The `reengage` command line: run campaigns, import leads, inspect state, run the local emulator.

Works against whatever endpoint the environment selects (AWS, or an emulator through
AWS_ENDPOINT_URL). Errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from reengage.domain.airtable_mapping import MappingError
from reengage.domain.crm_sync import CrmAccessError
from reengage.domain.knowledge import KnowledgeBaseError
from reengage.domain.leads import FollowUpStage, ResponseStatus
from reengage.ports import InvalidLeadDataError, TransientError
from reengage.settings import SettingsError
from reengage_cli.commands.campaign import cmd_preview, cmd_run
from reengage_cli.commands.crm import cmd_events, cmd_sync
from reengage_cli.commands.leads import cmd_cleanup, cmd_import, cmd_mark, cmd_migrate
from reengage_cli.commands.local import cmd_bootstrap, cmd_env, cmd_local
from reengage_cli.commands.operations import cmd_dlq, cmd_health, cmd_outbox
from reengage_cli.commands.statistics import cmd_stats, cmd_status
from reengage_cli.config import CliError
from reengage_cli.demo import cmd_demo
from reengage_cli.emulator import iam
from reengage_cli.emulator.template import TemplateError
from reengage_cli.importer import ImportFileError
from reengage_cli.output import EXIT_ERROR

NOW_HELP = "act as if at this ISO-8601 instant (e.g. 2026-12-01T08:30:00+01:00), to try send windows and holidays"


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
    demo.add_argument(
        "--airtable", action="store_true", help="keep the leads in a local Airtable-compatible server, synced both ways"
    )
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
    run.add_argument("--now", default=None, metavar="TIMESTAMP", help=NOW_HELP)
    status = command("status", cmd_status, "re-engagement statistics (from counters, no table scan)")
    status.add_argument("--json", action="store_true")
    status.add_argument("--rebuild", action="store_true", help="recompute the counters from the table once")
    status.add_argument("--next", type=int, default=10, metavar="N", help="list the next N sends (0 = none)")
    plot = command("stats", cmd_stats, "draw the funnel and the sends per day (what the dashboard shows)")
    plot.add_argument("--plot", required=True, metavar="FILE", help="an .svg or .html file to write")
    preview = command("preview", cmd_preview, "print the follow-up a lead would get, without sending anything")
    preview.add_argument("lead_id")
    preview.add_argument("--stage", choices=[stage.value for stage in FollowUpStage])
    preview.add_argument("--now", default=None, metavar="TIMESTAMP", help=NOW_HELP)
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
    sync = command("sync", cmd_sync, "sync leads with a CRM table (Airtable) both ways")
    sync.add_argument("crm", choices=["airtable"])
    sync.add_argument("--pull", action="store_true", help="upsert the records changed since the last pull")
    sync.add_argument("--push", action="store_true", help="write reengage's state onto every record that differs")
    sync.add_argument("--full", action="store_true", help="pull every record, not only the changed ones")
    sync.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
    events = command("events", cmd_events, "the CRM events the local emulator captured (EventBridge)")
    events.add_argument("--json", action="store_true")
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
    # Before any client exists: against an emulator, the function steps run as their roles.
    iam.install_credential_switch()
    try:
        return int(args.handler(args))
    except (
        CliError,
        SettingsError,
        TemplateError,
        ImportFileError,
        InvalidLeadDataError,
        KnowledgeBaseError,
        MappingError,
        CrmAccessError,
    ) as error:
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
