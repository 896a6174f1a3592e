"""`reengage status` and `reengage stats --plot`: the statistics, read from counters (no table scan)."""

from __future__ import annotations

import argparse
import json
import os
from itertools import islice
from pathlib import Path
from typing import Any

from reengage import wiring
from reengage.adapters.leads_table import read_lead
from reengage.domain.clock import parse_time, utc_now
from reengage.domain.leads import Lead, ScheduleState
from reengage.domain.stats import RECENT_DAYS, UNREADABLE, statistics, tally
from reengage.ports import Counters, InvalidLeadDataError
from reengage.settings import Settings
from reengage_cli import plot
from reengage_cli.config import CliError, load_settings
from reengage_cli.emulator.server import endpoint_override
from reengage_cli.emulator.streams import catch_up
from reengage_cli.output import EXIT_OK, print_statistics, say


def up_to_date_counters(settings: Settings) -> Counters:
    """The statistics counters, brought up to date first when running against an emulator."""
    counters = wiring.counters(settings)
    if endpoint_override(os.environ):
        # No CountersFunction runs locally: read the leads table's stream here instead.
        table = wiring.client("dynamodb").describe_table(TableName=settings.leads_table_name)["Table"]
        if table.get("LatestStreamArn"):
            catch_up(wiring.client("dynamodbstreams"), table["LatestStreamArn"], counters, read_lead)
    return counters


def current_statistics(settings: Settings) -> dict[str, Any]:
    now = utc_now()
    return statistics(*up_to_date_counters(settings).read(now, RECENT_DAYS), now)


def backlog(settings: Settings) -> dict[str, int]:
    """What the runs have not reached yet, read from the schedule index (every shard):
    leads due now and not claimed, and claims not yet sent (queued, or abandoned)."""
    schedule = wiring.stores(settings).schedule
    now = utc_now()
    return {
        "due_now": sum(1 for _ in schedule.entries(ScheduleState.DUE, settings.policy.due_cutoff(now))),
        "claimed": sum(1 for _ in schedule.entries(ScheduleState.CLAIMED, "9999")),
    }


def rebuild_statistics(settings: Settings) -> None:
    """Recompute every counter from the table (one scan), e.g. after a restore."""
    counters = up_to_date_counters(settings)
    leads = (item if isinstance(item, Lead) else UNREADABLE for item in wiring.stores(settings).leads.scan())
    counters.replace(*tally(leads))


def cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.rebuild:
        rebuild_statistics(settings)
        if not args.json:
            say("Counters rebuilt from the table.")
    figures = {**current_statistics(settings), "backlog": backlog(settings)}
    if args.json:
        say(json.dumps(figures, indent=2))
        return EXIT_OK
    print_statistics(figures)
    set_aside = list(wiring.stores(settings).schedule.entries(ScheduleState.INVALID, "9999"))
    if set_aside:
        say("  Set aside (fix the item, then run `reengage migrate`):")
    for entry in set_aside[:20]:
        say(f"    {entry.lead_id}")
    if len(set_aside) > 20:
        say(f"    ... and {len(set_aside) - 20} more")
    print_next_sends(settings, args.next)
    return EXIT_OK


def print_next_sends(settings: Settings, count: int) -> None:
    """The next `count` follow-ups in due order (the schedule index's own order), local time and UTC."""
    if count <= 0:
        return
    stores = wiring.stores(settings)
    upcoming = list(islice(stores.schedule.entries(ScheduleState.DUE, "9999"), count))
    say(f"  Next sends ({len(upcoming)} shown, in each lead's local time):" if upcoming else "  Next sends: none due")
    policy = settings.policy
    for entry in upcoming:
        due_at = parse_time(entry.at)
        try:
            lead = stores.leads.get(entry.lead_id)
        except InvalidLeadDataError:
            lead = None
        if lead is None:
            say(f"    {due_at:%Y-%m-%d %H:%M} UTC  {entry.lead_id}")
            continue
        zone = policy.zone(lead)
        local = due_at.astimezone(zone.zoneinfo)
        say(f"    {due_at:%Y-%m-%d %H:%M} UTC  {local:%a %Y-%m-%d %H:%M} {zone.zone:<20} {entry.lead_id}")


def cmd_stats(args: argparse.Namespace) -> int:
    settings = load_settings()
    now = utc_now()
    totals, days = up_to_date_counters(settings).read(now, 30)
    figures = statistics(totals, days, now)
    svg = plot.render_svg(figures, totals, days, now)
    path = Path(args.plot)
    if path.suffix.lower() not in {".svg", ".html"}:
        raise CliError(f"--plot {path}: use a .svg or .html file")
    path.write_text(plot.render_html(svg, figures) if path.suffix.lower() == ".html" else svg, encoding="utf-8")
    say(f"Wrote {path}")
    return EXIT_OK
