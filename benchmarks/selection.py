"""Selection cost at scale: 100,000 leads, 1% due, on the local emulator over HTTP.

Prints DynamoDB items examined per due lead (target <= 1.1; a Scan would examine
every lead, ~100 per due one) and API calls per lead enqueued.

    .venv/bin/python benchmarks/selection.py [--leads 100000] [--due-share 0.01]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "shared"), str(Path(__file__).resolve().parents[1] / "cli")]

from reengage import wiring  # noqa: E402
from reengage.adapters.leads_table import DynamoSchedule, QueryStats  # noqa: E402
from reengage.domain.clock import format_time  # noqa: E402
from reengage.domain.leads import FollowUpPolicy, Lead  # noqa: E402
from reengage.services.scheduler import CampaignRequest, run_scheduler  # noqa: E402
from reengage.settings import Settings  # noqa: E402
from reengage_cli.emulator import provision  # noqa: E402
from reengage_cli.emulator.server import LocalEmulator, use_endpoint  # noqa: E402


def make_lead(number: int, due: bool, now: datetime, rng: random.Random) -> Lead:
    if due:
        contacted, status, stage = now - timedelta(days=rng.uniform(7.01, 30)), "No Response", None
    else:
        # The other 99%: waiting (contacted recently), finished, answered, or never sent.
        kind = rng.choice(["recent", "recent", "finished", "answered", "new"])
        contacted = now - timedelta(days=rng.uniform(0, 6.9) if kind == "recent" else rng.uniform(8, 60))
        status = "Interested" if kind == "answered" else "No Response"
        stage = "Followup_2" if kind == "finished" else None
        if kind == "new":
            status = "No Response"
    lead = Lead(
        id=f"bench-{number:06d}",
        email=f"lead{number}@example.com",
        name=f"Lead {number}",
        engagement_status="New" if not due and kind == "new" else "Sent",
        email_confidence_level="Real",
        last_contacted=format_time(contacted),
        follow_up_stage=stage,
        response_status=status,
    )
    FollowUpPolicy().reschedule(lead)
    return lead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--due-share", type=float, default=0.01)
    args = parser.parse_args()
    rng = random.Random(7)
    now = datetime.now(UTC)
    due_count = int(args.leads * args.due_share)
    due_numbers = set(rng.sample(range(args.leads), due_count))

    with LocalEmulator() as server:
        use_endpoint(server.endpoint, os.environ)
        provisioned = provision.provision()
        os.environ.update(provisioned.environment)
        settings = Settings.from_env(os.environ)
        stores, queue = wiring.stores(settings), wiring.follow_up_queue(settings)
        started = time.perf_counter()
        stores.leads.put_many(  # type: ignore[attr-defined]
            make_lead(number, number in due_numbers, now, rng) for number in range(args.leads)
        )
        store = stores.schedule
        assert isinstance(store, DynamoSchedule)
        store.query_stats = QueryStats()
        print(f"loaded {args.leads} leads ({due_count} due) in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        summary = run_scheduler(stores, queue, CampaignRequest(7), settings, now)
        elapsed = time.perf_counter() - started
        claims = summary.marked + summary.lost_race + summary.enqueue_failed
        calls = store.query_stats.calls + claims + queue.calls
        print(f"due leads found:                {summary.eligible} (expected {due_count})")
        print(f"leads enqueued:                 {summary.marked}")
        print(f"DynamoDB items examined:        {store.query_stats.items_examined}")
        print(f"items examined per due lead:    {store.query_stats.items_examined / max(summary.eligible, 1):.3f}")
        print(f"  (a Scan would examine {args.leads} items: {args.leads / max(due_count, 1):.1f} per due lead)")
        print(
            f"API calls:                      {calls} "
            f"({store.query_stats.calls} Query, {claims} UpdateItem, {queue.calls} SendMessageBatch)"
        )
        print(f"API calls per lead enqueued:    {calls / max(summary.marked, 1):.3f}")
        print(f"scheduler wall time:            {elapsed:.2f} s on the emulator")


if __name__ == "__main__":
    main()
