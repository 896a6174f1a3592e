"""Scale: N leads (10% due) through one scheduled run, the senders and SES's feedback, on the emulator.

Prints, per step, wall time and what was asked of AWS, counted from outside the code by
botocore event hooks (benchmarks/meter.py): calls by operation, DynamoDB write and read
units, the busiest partition key's share of the writes, and the process's peak memory.
Then the figures per email sent, which benchmarks/cost.py prices (`--json FILE` writes them).

Steps: seed (BatchWriteItem, not measured per email), scheduler (one run: the scheduled
event's run_scheduler; if it stops at its deadline, the schedule's next runs continue and
are counted), sender (the SenderFunction handler over the queue, 10 records per batch, as
the event source mapping delivers them; the mapping's ReceiveMessage/DeleteMessageBatch are
counted too), feedback (the FeedbackFunction handler for the Send and Delivery events SES
publishes for each email).

    .venv/bin/python benchmarks/scale.py [--leads 100000] [--due 0.1] [--json figures.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared"), str(ROOT / "cli")]

from benchmarks.meter import Meter, Tally  # noqa: E402
from reengage import wiring  # noqa: E402
from reengage.domain.clock import format_time  # noqa: E402
from reengage.domain.leads import Lead  # noqa: E402
from reengage.services.scheduler import CampaignRequest, run_scheduler  # noqa: E402
from reengage.settings import Settings  # noqa: E402
from reengage_cli.emulator import provision  # noqa: E402
from reengage_cli.emulator.server import LocalEmulator, use_endpoint  # noqa: E402


def _scheduler_timeout_ms() -> int:
    from reengage_cli.emulator.template import load_template

    return int(load_template(ROOT / "template.yaml")["Resources"]["SchedulerFunction"]["Properties"]["Timeout"]) * 1000


LAMBDA_TIMEOUT_MS = _scheduler_timeout_ms()  # each scheduler run gets SchedulerFunction's Timeout
SENDERS = 4  # sender invocations at once (threads)
OVERRIDES = {
    "SendWindow": "always",  # the run happens now, whatever the hour
    "CompanyPauseDays": "0",
    "MaxSendsPerDay": "10000000",  # the cap is on (counted on its shards) but does not stop the run
}


def load_module(function: str) -> Any:
    path = ROOT / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"bench_{function}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def build_leads(count: int, due_share: float, settings: Settings, now: datetime) -> list[Lead]:
    policy = settings.policy
    leads = []
    due_every = max(1, round(1 / due_share)) if due_share else count + 1
    for number in range(count):
        due = number % due_every == 0
        days = 8 + (number % 20) if due else 1 + (number % 5)
        lead = Lead(
            id=f"scale-{number:06d}",
            email=f"lead{number}@company{number // 20}.com",  # 20 colleagues per company
            name=f"Lead {number}",
            company=f"Company {number % 997}",
            engagement_status="Sent",
            email_confidence_level="Real",
            last_contacted=format_time(now - timedelta(days=days, minutes=number % 600)),
            response_status="No Response",
        )
        policy.reschedule(lead)
        leads.append(lead)
    return leads


class CpuClock:
    """CPU seconds the application's own threads spend (time.thread_time around its work): the
    emulator runs in other threads of this process and is not counted."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds

    def timed(self, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(time.thread_time() - started)

        return wrapper


def stored_bytes() -> int:
    """The size DynamoDB bills storage for: every item of every table (plus 100 bytes of overhead each)."""
    from benchmarks.meter import _backend

    total = 0
    for table in _backend().tables.values():
        for item in table.all_items():
            total += item.size() + 100
    return total


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    template = json.loads((ROOT / "events" / "sqs-follow-ups.json").read_text())["Records"][0]
    return {
        "Records": [
            {
                **template,
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "md5OfBody": message["MD5OfBody"],
                "attributes": {**template["attributes"], **message.get("Attributes", {})},
            }
            for message in messages
        ]
    }


def event_types() -> list[str]:
    """The per-email SES events the template's configuration set publishes (Send, Delivery)."""
    from reengage_cli.emulator.template import load_template

    resources = load_template(ROOT / "template.yaml")["Resources"].values()
    (destination,) = [r for r in resources if r.get("Type") == "AWS::SES::ConfigurationSetEventDestination"]
    published = destination["Properties"]["EventDestination"]["MatchingEventTypes"]
    return [kind.capitalize() for kind in published if kind in ("send", "delivery")]


def scheduler_metrics() -> list[str]:
    """The metrics every scheduler run publishes (read from its handler)."""
    import re

    return re.findall(r'count\("(\w+)"', (ROOT / "functions" / "scheduler" / "app.py").read_text())


EVENT_TYPES = event_types()


def ses_events(outcomes: list[Any], settings: Settings, kinds: list[str]) -> list[dict[str, Any]]:
    """The notifications SES publishes (configuration set -> SNS) for each email."""
    events = []
    for outcome in outcomes:
        for kind in kinds:
            message = {
                "eventType": kind,
                "mail": {
                    "timestamp": format_time(datetime.now(UTC)),
                    "source": settings.sender_email,
                    "messageId": outcome.message_id,
                    "destination": ["x@example.com"],
                    "tags": {"lead_id": [outcome.lead_id], "stage": [outcome.stage]},
                },
            }
            events.append({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(message)}}]})
    return events


def stream_end(settings: Settings) -> dict[str, str]:
    """An iterator per shard at the stream's current end: the counters step reads only the run's records."""
    streams = wiring.client("dynamodbstreams")
    arn = wiring.client("dynamodb").describe_table(TableName=settings.leads_table_name)["Table"]["LatestStreamArn"]
    shards = [shard["ShardId"] for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]]
    return {
        shard: streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]
        for shard in shards
    }


def apply_stream(settings: Settings, iterators: dict[str, str], cpu: CpuClock, batch: int = 100) -> int:
    """CountersFunction over the leads table's stream: batches of 100 records, as its event source
    mapping delivers them (the mapping's stream reads are free in AWS and not counted per email)."""
    from reengage.adapters.leads_table import read_lead
    from reengage.services.counters import stream_delta

    streams = wiring.client("dynamodbstreams")
    counters = wiring.counters(settings)
    invocations = 0
    for shard_id, start in iterators.items():
        iterator: str | None = start
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=batch)
            records = page.get("Records", [])
            if not records:
                break
            started = time.thread_time()
            totals, days = stream_delta(records, read_lead)
            counters.apply(totals, days, checkpoint=(shard_id, records[-1]["dynamodb"]["SequenceNumber"]))
            cpu.add(time.thread_time() - started)
            invocations += 1
            iterator = page.get("NextShardIterator")
    return invocations


class Context:
    def __init__(self, budget_ms: int) -> None:
        self.deadline = time.monotonic() + budget_ms / 1000
        self.function_name = "bench"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
        self.aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def run_scheduler_chain(settings: Settings, now: datetime, cpu: CpuClock) -> tuple[list[dict[str, Any]], float]:
    """The scheduled run, and (if it stopped at its deadline) the schedule's next runs until none is left."""
    stores, queue = wiring.stores(settings), wiring.follow_up_queue(settings)
    claim = stores.schedule.claim
    stores.schedule.claim = cpu.timed(claim)  # type: ignore[method-assign]  # the pool threads' CPU
    runs = []
    started = time.perf_counter()
    while True:
        context = Context(LAMBDA_TIMEOUT_MS)
        main_thread = time.thread_time()
        summary = run_scheduler(stores, queue, CampaignRequest(7), settings, now, context.get_remaining_time_in_millis)
        cpu.add(time.thread_time() - main_thread)
        runs.append(summary.as_dict())
        if not summary.stopped_at_deadline:
            stores.schedule.claim = claim  # type: ignore[method-assign]
            return runs, time.perf_counter() - started


def drain(settings: Settings, sender_module: Any, cpu: CpuClock, limit: int | None) -> list[Any]:
    """The event source mapping: receive 10, invoke the sender, delete what succeeded; SENDERS at once."""
    sqs = wiring.client("sqs")
    sender, retry_later = sender_module._deployment()
    outcomes: list[Any] = []
    lock = threading.Lock()

    def poller() -> None:
        idle = 0
        while idle < 2 and (limit is None or len(outcomes) < limit):
            messages = sqs.receive_message(
                QueueUrl=settings.queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=600,
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                idle += 1
                continue
            idle = 0
            response, batch_outcomes = cpu.timed(sender_module.handle_batch)(
                sqs_event(messages), Context(120_000), sender, retry_later
            )
            failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                sqs.delete_message_batch(
                    QueueUrl=settings.queue_url,
                    Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)],
                )
            with lock:
                outcomes.extend(batch_outcomes)

    threads = [threading.Thread(target=poller) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def report_step(name: str, seconds: float, tally: Tally, steps: dict[str, Any], cpu: CpuClock | None = None) -> None:
    key, share = tally.busiest_key()
    index_key, index_share = tally.busiest_key("reengage-local-LeadsTable/")
    steps[name] = {
        "seconds": round(seconds, 2),
        "calls": dict(tally.calls),
        "write_units": tally.write_units,
        "read_units": tally.read_units,
        "busiest_key": key,
        "busiest_key_share": round(share, 4),
        "busiest_index_key": index_key,
        "busiest_index_key_share": round(index_share, 4),
        "peak_memory_mb": round(peak_memory_mb()),
        # The application's own CPU: its threads' time less what the meter's hooks took in them.
        "cpu_seconds": round(max(0.0, cpu.seconds - tally.meter_cpu), 3) if cpu else None,
    }
    calls = sum(tally.calls.values())
    print(
        f"{name:<10} {seconds:8.1f} s  {calls:>8} calls  {tally.write_units:>9.0f} WRU  {tally.read_units:>8.0f} RRU"
        f"  busiest key {key} ({share:.1%} of writes); index {index_key} ({index_share:.1%})"
        f"  peak RSS {peak_memory_mb():.0f} MB" + (f"  app CPU {steps[name]['cpu_seconds']:.1f} s" if cpu else "")
    )


def per_email(figures: dict[str, Any]) -> dict[str, Any]:
    """Calls and units per follow-up sent. With --send-limit only part of the claims is sent: the
    scheduler's share is prorated by sent / claimed. Stream reads by the event source mapping are
    free in AWS and are not the application's calls."""
    emails = figures["emails"]
    steps = figures["steps"]
    claimed = sum(run["marked"] for run in steps["scheduler"].get("runs", [])) or emails
    calls: Counter[str] = Counter()
    write_units = read_units = 0.0
    for name in ("scheduler", "sender", "feedback", "counters"):
        share = emails / claimed if name == "scheduler" and claimed else 1.0
        for operation, count in steps[name]["calls"].items():
            if not operation.startswith("dynamodbstreams"):
                calls[operation] += count * share
        write_units += steps[name]["write_units"] * share
        read_units += steps[name]["read_units"] * share
    if not emails:
        return {"calls": {}, "write_units": 0.0, "read_units": 0.0}
    return {
        "calls": {operation: count / emails for operation, count in calls.items()},
        "write_units": write_units / emails,
        "read_units": read_units / emails,
    }


def markdown(figures: dict[str, Any]) -> str:
    """The README's table, from the figures a run wrote."""
    runs = figures["steps"]["scheduler"].get("runs", [])
    due = sum(run["eligible"] for run in runs) if runs else figures["due"]
    lines = [
        f"`benchmarks/scale.py --leads {figures['leads']}`: {figures['leads']:,} leads, {due:,} due, "
        f"{figures['emails']:,} follow-ups sent.",
        "",
        "| step | wall time (emulator) | app CPU | calls | write units | read units"
        " | busiest key (share of the step's writes) | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, step in figures["steps"].items():
        cpu = f"{step['cpu_seconds']:.1f} s" if step.get("cpu_seconds") is not None else "-"
        key = step["busiest_key"].replace("reengage-local-", "")
        lines.append(
            f"| {name} | {step['seconds']:.0f} s | {cpu} | {sum(step['calls'].values()):,} | {step['write_units']:,.0f}"
            f" | {step['read_units']:,.0f} | {key} ({step['busiest_key_share']:.1%}) | {step['peak_memory_mb']:,} MB |"
        )
    figures_per_email = per_email(figures)
    calls = sum(figures_per_email["calls"].values())
    top = sorted(figures_per_email["calls"].items(), key=lambda item: -item[1])
    lines += [
        "",
        f"Per follow-up sent (scheduler, sender, feedback, counters): **{calls:.2f} API calls, "
        f"{figures_per_email['write_units']:.1f} write units, {figures_per_email['read_units']:.1f} read units** "
        "(" + ", ".join(f"{op} {n:.2f}" for op, n in top) + ").",
    ]
    if runs:
        lines.append(
            f"Scheduler: {len(runs)} run(s); the first claimed {runs[0]['marked']:,} and left "
            f"{runs[0]['left_for_next_run']:,} for the next run."
        )
    return "\n".join(lines)


def claims_only(count: int, due_share: float) -> None:
    """The scheduled run and the schedule chain after it, unmetered: each run's claims and the
    backlog it reported, in emulator time (each run gets SchedulerFunction's Timeout)."""
    with LocalEmulator() as server:
        use_endpoint(server.endpoint, os.environ)
        os.environ.update(provision.provision(OVERRIDES).environment)
        settings = Settings.from_env(os.environ)
        now = datetime.now(UTC)
        started = time.perf_counter()
        wiring.stores(settings).leads.put_many(build_leads(count, due_share, settings, now))  # type: ignore[attr-defined]
        print(f"seeded {count:,} leads in {time.perf_counter() - started:.0f} s", flush=True)
        cpu = CpuClock()
        runs, seconds = run_scheduler_chain(settings, now, cpu)
        for number, run in enumerate(runs, start=1):
            left = run["left_for_next_run"]
            print(f"run {number}: claimed {run['marked']:,}, left for the next run {left:,}", flush=True)
        claimed = sum(run["marked"] for run in runs)
        print(
            f"{claimed:,} claimed and enqueued in {len(runs)} run(s), {seconds:.0f} s of emulator time "
            f"({seconds * 1000 / max(1, claimed):.1f} ms per claim); app CPU {cpu.seconds:.1f} s "
            f"({cpu.seconds * 1000 / max(1, claimed):.2f} ms per claim); peak RSS {peak_memory_mb():,.0f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--due", type=float, default=0.1, help="share of the leads due now")
    parser.add_argument(
        "--send-limit",
        type=int,
        help="send only about this many of the queued follow-ups (per-email figures from a sample; default all)",
    )
    parser.add_argument("--shards", type=int, help="ScheduleShards for this run (default: the template's)")
    parser.add_argument("--markdown", metavar="FILE", help="print the README table from a --json FILE and exit")
    parser.add_argument("--json", help="write the figures to this file (benchmarks/cost.py reads it)")
    parser.add_argument(
        "--claims-only",
        action="store_true",
        help="seed, then only the scheduler's runs (no meter, no senders): how a backlog is claimed run by run",
    )
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    if args.claims_only:
        claims_only(args.leads, args.due)
        return
    meter = Meter()
    steps: dict[str, Any] = {}
    with LocalEmulator() as server, meter.installed():
        use_endpoint(server.endpoint, os.environ)
        overrides = {**OVERRIDES, **({"ScheduleShards": str(args.shards)} if args.shards else {})}
        os.environ.update(provision.provision(overrides).environment)
        settings = Settings.from_env(os.environ)
        now = datetime.now(UTC)

        started = time.perf_counter()
        leads = build_leads(args.leads, args.due, settings, now)
        wiring.stores(settings).leads.put_many(leads)  # type: ignore[attr-defined]
        del leads
        after_seed = stream_end(settings)  # the counters step reads the run's stream records only
        report_step("seed", time.perf_counter() - started, meter.reset(), steps)

        cpu = CpuClock()
        runs, seconds = run_scheduler_chain(settings, now, cpu)
        report_step("scheduler", seconds, meter.reset(), steps, cpu)
        steps["scheduler"]["runs"] = runs

        sender_module = load_module("sender")
        cpu = CpuClock()
        started = time.perf_counter()
        outcomes = drain(settings, sender_module, cpu, args.send_limit)
        report_step("sender", time.perf_counter() - started, meter.reset(), steps, cpu)
        kinds = Counter(outcome.kind for outcome in outcomes)

        feedback = load_module("feedback")
        sent = [outcome for outcome in outcomes if outcome.kind == "sent"]
        events = ses_events(sent, settings, EVENT_TYPES)
        cpu = CpuClock()
        started = time.perf_counter()
        for event in events:
            cpu.timed(feedback.lambda_handler)(event, Context(30_000))
        report_step("feedback", time.perf_counter() - started, meter.reset(), steps, cpu)
        steps["feedback"]["events"] = len(events)

        cpu = CpuClock()
        started = time.perf_counter()
        invocations = apply_stream(settings, after_seed, cpu)
        report_step("counters", time.perf_counter() - started, meter.reset(), steps, cpu)
        steps["counters"]["invocations"] = invocations

        # A run with nothing due: what every 15 minutes costs at zero traffic.
        cpu = CpuClock()
        started_cpu = time.thread_time()
        run_scheduler(wiring.stores(settings), wiring.follow_up_queue(settings), CampaignRequest(7), settings, now)
        cpu.add(time.thread_time() - started_cpu)
        idle = meter.reset()
        idle_run = {
            "calls": dict(idle.calls),
            "read_units": idle.read_units,
            "cpu_ms": cpu.seconds * 1000,
            "metrics": scheduler_metrics(),
        }
        print(f"idle run: {sum(idle.calls.values())} calls, {idle.read_units:.1f} RRU, {cpu.seconds * 1000:.0f} ms CPU")
        size = stored_bytes()

    emails = kinds["sent"]
    for step in steps.values():
        if step.get("cpu_seconds") is not None and emails:
            step["cpu_ms_per_email"] = step["cpu_seconds"] * 1000 / emails
    figures = {
        "leads": args.leads,
        "due": sum(run["eligible"] for run in runs),
        "emails": emails,
        "outcomes": dict(kinds),
        "steps": steps,
        "idle_run": idle_run,
        "stored_bytes": size,
    }
    figures["per_email"] = per_email(figures)
    print(f"\nleads {args.leads}, due {figures['due']}, outcomes {dict(kinds)}")
    print(markdown(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
