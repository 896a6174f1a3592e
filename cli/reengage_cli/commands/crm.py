"""`reengage sync airtable --pull|--push [--dry-run]` and `reengage events`: the CRM side.

Against an emulator, both act as SyncFunction's role; `reengage events` first does what
SyncFunction does with the leads table's stream there (publish the CRM events of the changes
not seen yet), then lists the events the emulator captured.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from functools import cache
from typing import Any

from reengage import wiring
from reengage.adapters.leads_table import read_lead
from reengage.adapters.sync_state import DynamoSyncState
from reengage.domain.airtable_mapping import MappingError
from reengage.domain.clock import utc_now
from reengage.domain.crm_sync import CrmAccessError
from reengage.services.crm_sync import SyncReport, configured_push, lead_changes, pull, push_all
from reengage.settings import Settings
from reengage_cli.config import CliError, load_settings, require_endpoint
from reengage_cli.emulator import iam, provision
from reengage_cli.emulator.events import CapturedEvent, captured_events
from reengage_cli.output import EXIT_OK, EXIT_REJECTED, say

_STAND_IN = "local-stream-consumer"


def airtable_parts(settings: Settings) -> Any:
    try:
        parts = wiring.airtable_sync(settings)
    except MappingError as error:
        raise CliError(str(error)) from error
    if parts is None:
        raise CliError(
            "the Airtable sync is off: set AIRTABLE_TOKEN_SECRET (a Secrets Manager secret holding the token),"
            ' AIRTABLE_BASE_ID and AIRTABLE_TABLE_ID (README "Airtable and CRM")'
        )
    return parts


def print_sync_report(report: SyncReport, direction: str) -> None:
    prefix = "Would write" if report.dry_run else "Wrote"
    if direction == "pull":
        say(
            f"Read {report.read} changed records: {report.created} new leads, {report.updated} updated,"
            f" {report.unchanged} unchanged, {len({error.lead_id for error in report.rejected})} records rejected."
        )
        for note in report.notes:
            say(f"  note: {note}")
        for error in report.rejected:
            say(f"  rejected: {error}")
    if report.pushed or direction == "push":
        unlinked = "records without a lead" if direction == "push" else "leads without a record"
        say(f"{prefix} {report.pushed} records back to Airtable ({report.unlinked} {unlinked}).")
    if report.push_failures:
        say(f"Airtable refused {len(report.push_failures)} records (left for review, not retried):")
        for failure in report.push_failures:
            say(f"  {failure}")
    for deleted in report.deleted:
        say(f"  {deleted}")
    if report.cursor:
        say(f"Next pull reads records changed after {report.cursor}.")


def cmd_sync(args: argparse.Namespace) -> int:
    if not (args.pull or args.push):
        raise CliError("say what to sync: --pull (Airtable -> reengage), --push (reengage -> Airtable), or both")
    settings = load_settings()
    table, state, mapping = airtable_parts(settings)
    failed = False
    try:
        with iam.acting_as(provision.function_credentials("SyncFunction")):
            if args.pull:
                report = pull(
                    wiring.stores(settings), table, state, mapping, utc_now(), settings.policy, args.dry_run, args.full
                )
                print_sync_report(report, "pull")
                failed |= bool(report.rejected or report.push_failures)
            if args.push:
                report = push_all(wiring.stores(settings), table, state, mapping, args.dry_run)
                print_sync_report(report, "push")
                failed |= bool(report.push_failures)
    except CrmAccessError as error:
        raise CliError(str(error)) from error
    return EXIT_REJECTED if failed else EXIT_OK


def consume_stream_locally(settings: Settings) -> tuple[int, int]:
    """SyncFunction's stream work on an emulator: (events published, records pushed) for the
    changes not consumed yet (a checkpoint per shard, kept in the send-ledger table)."""
    dynamodb, streams = wiring.client("dynamodb"), wiring.client("dynamodbstreams")
    arn = dynamodb.describe_table(TableName=settings.leads_table_name)["Table"].get("LatestStreamArn")
    if not arn:
        return 0, 0
    push = configured_push(cache(lambda: wiring.airtable_sync(settings)))
    published = pushed = 0
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"].get("Shards", []):
        checkpoint = DynamoSyncState(dynamodb, settings.send_ledger_table_name, f"{_STAND_IN}:{shard['ShardId']}")
        position = checkpoint.cursor()
        start: dict[str, str] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": position}
            if position
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], **start)["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=100)
            records = page.get("Records", [])
            if not records:
                break
            with iam.acting_as(provision.function_credentials("SyncFunction")):
                outcome = lead_changes(records, read_lead, settings.policy, wiring.crm_event_bus(settings), push)
            published, pushed = published + outcome.events, pushed + outcome.pushed
            if outcome.config_error:
                say(f"  nothing pushed to Airtable: {outcome.config_error}")
            last = records[-1]["dynamodb"]["SequenceNumber"]
            checkpoint.save_cursor(last, utc_now().isoformat())
            iterator = page.get("NextShardIterator")
    return published, pushed


def print_events(found: list[CapturedEvent]) -> None:
    say(f"{len(found)} CRM events on the bus")
    for event in found:
        detail = event.detail
        extra = ", ".join(
            f"{name}={detail[name]}" for name in ("stage", "status", "reason", "message_id") if detail.get(name)
        )
        say(f"  {event.detail_type:<17} {detail.get('name') or detail.get('lead_id')} <{detail.get('email')}> {extra}")
    kinds = Counter(event.detail_type for event in found)
    if kinds:
        say("  by type: " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())))


def cmd_events(args: argparse.Namespace) -> int:
    endpoint = require_endpoint("events")
    settings = load_settings()
    consume_stream_locally(settings)
    found = [event for event in captured_events(endpoint) if event.source == "reengage"]
    if args.json:
        say(json.dumps([{"detail-type": e.detail_type, "bus": e.bus, "detail": e.detail} for e in found], indent=2))
        return EXIT_OK
    print_events(found)
    return EXIT_OK
