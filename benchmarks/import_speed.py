"""Import speed: `reengage import` against a naive loop (one boto3 put_item per lead, in file
order), side by side on the same emulator, each into a fresh table, from the same generated CSV.

Prints leads/s for both, the ratio, the DynamoDB calls and clients each made, and the import's
peak RSS after its first 10,000 rows and at the end (the rows stream through, so the two
should match however long the file: `--leads 100000` shows it).

The emulator runs in a process of its own (`reengage local`), as DynamoDB is a service of its
own: in one process, the importer's threads and the emulator would take turns on one Python
interpreter lock and the figure would measure that. Each side also runs in a fresh process,
so its peak RSS is its own. The emulator serves one request at a time (a conditional write is
checked and applied under one lock) and much of a request's cost is per request, not per item:
what makes the import fast here is fewer requests (100 leads per BatchGetItem and per
TransactWriteItems); more writers barely help on it (1, 2, 4 and 8 at 2,000 leads: within
noise on two shared cores), while against DynamoDB they overlap their round trips.

    .venv/bin/python benchmarks/import_speed.py [--leads 20000] [--writers 2] [--no-naive]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared"), str(ROOT / "cli")]

from reengage.services.imports import WRITERS  # noqa: E402

COLUMNS = [
    "id",
    "name",
    "email",
    "company",
    "company_website",
    "country",
    "engagement_status",
    "email_confidence_level",
    "last_contacted",
    "response_status",
]
NAIVE_TABLE = "naive-import-leads"
RSS_MARK = 10_000  # rows: the import's peak RSS is printed here and at the end


def write_csv(path: Path, count: int, now: datetime) -> None:
    """`count` leads as a CRM exports them: 20 colleagues per company, contacts spread over 40 days."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for number in range(count):
            company = number // 20
            contacted = now - timedelta(days=1 + number % 40, minutes=number % 600)
            writer.writerow(
                [
                    f"imp-{number:06d}",
                    f"Person {number}",
                    f"person{number}@company{company}.com",
                    f"Company {company}",
                    f"https://company{company}.com",
                    ("DE", "US", "SG", "BR", "")[number % 5],
                    "Sent",
                    ("Real", "Real", "Guess")[number % 3],
                    contacted.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "No Response",
                ]
            )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    """`reengage local` in a process of its own, provisioned from template.yaml; its endpoint."""
    port = _free_port()
    code = f"from reengage_cli.main import main; main(['local', '--port', '{port}'])"
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stdout is not None
    line = server.stdout.readline()  # printed once the tables exist
    if "listening" not in line:
        server.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return server, f"http://127.0.0.1:{port}"


def _metered() -> tuple[Counter[str], Counter[str]]:
    """Counts botocore clients created (by service) and calls made (by operation) from now on."""
    import botocore.session

    clients: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    create = botocore.session.Session.create_client

    def counting(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = create(self, service_name, *args, **kwargs)
        clients[service_name] += 1
        client.meta.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
        return client

    botocore.session.Session.create_client = counting  # type: ignore[method-assign]
    return clients, calls


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) another process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def run_naive(path: Path) -> dict[str, Any]:
    """One put_item per lead, in file order, with one boto3 client: what a first script would do."""
    import boto3

    clients, calls = _metered()
    dynamodb = boto3.client("dynamodb")
    started, cpu = time.perf_counter(), _cpu_seconds()
    written = 0
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            item = {name: {"S": value} for name, value in row.items() if value}
            dynamodb.put_item(TableName=NAIVE_TABLE, Item=item)
            written += 1
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    return {"leads": written, "seconds": seconds, "cpu": cpu, "clients": dict(clients), "calls": dict(calls)}


def run_import(path: Path, now: datetime, writers: int) -> dict[str, Any]:
    """`reengage import FILE`'s path (cli importer -> services/imports.py), into the template's table."""
    from reengage import wiring
    from reengage.services import imports
    from reengage.settings import Settings
    from reengage_cli.emulator import provision
    from reengage_cli.importer import read_rows

    os.environ.update(provision.provision(create=False).environment)  # looked up before counting
    settings = Settings.from_env(os.environ)
    clients, calls = _metered()
    rss_at_mark: list[float] = []

    def progress(progress: imports.ImportProgress) -> None:
        if progress.rows_read >= RSS_MARK and not rss_at_mark:
            rss_at_mark.append(_peak_rss_mb())

    started, cpu = time.perf_counter(), _cpu_seconds()
    report = imports.import_rows(
        wiring.stores(settings), read_rows(path), now, settings.policy, progress, writers=writers
    )
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    if report.rejected:
        raise SystemExit(f"rows rejected: {[str(error) for error in report.rejected[:3]]}")
    return {
        "leads": report.created + report.updated,
        "seconds": seconds,
        "cpu": cpu,
        "clients": dict(clients),
        "calls": dict(calls),
        "rss_at_mark_mb": rss_at_mark[0] if rss_at_mark else None,
        "rss_mb": _peak_rss_mb(),
    }


def clone_leads_table(name: str) -> None:
    """A fresh table shaped like the template's leads table (keys, indexes, stream): the naive side's."""
    import boto3

    from reengage_cli.emulator import provision

    dynamodb: Any = boto3.client("dynamodb")
    leads = provision.provision(create=False).environment["LEADS_TABLE_NAME"]
    table = dynamodb.describe_table(TableName=leads)["Table"]
    indexes = [
        {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
        for index in table.get("GlobalSecondaryIndexes", [])
    ]
    dynamodb.create_table(
        TableName=name,
        KeySchema=table["KeySchema"],
        AttributeDefinitions=table["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
        **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
        **({"StreamSpecification": table["StreamSpecification"]} if table.get("StreamSpecification") else {}),
    )


def side(name: str, server: int, endpoint: str, path: Path, now: datetime, writers: int) -> dict[str, Any]:
    """Run one side in a fresh process (its own peak RSS, its own clients) and read its figures,
    with the CPU time the emulator spent meanwhile."""
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
    emulator_cpu = _process_cpu_seconds(server)
    command = [sys.executable, __file__, "--side", name, "--file", str(path), "--now", now.isoformat()]
    done = subprocess.run([*command, "--writers", str(writers)], env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["emulator_cpu"] = _process_cpu_seconds(server) - emulator_cpu
    return figures


def _describe(label: str, figures: dict[str, Any]) -> float:
    rate = figures["leads"] / figures["seconds"]
    per_lead = {name: 1000 * figures[name] / figures["leads"] for name in ("cpu", "emulator_cpu")}
    print(f"{label}: {figures['leads']:,} in {figures['seconds']:.1f} s = {rate:,.0f} leads/s")
    print(f"  calls: {figures['calls']}; clients: {figures['clients']}")
    print(
        f"  CPU per lead: {per_lead['cpu']:.2f} ms in the importing process,"
        f" {per_lead['emulator_cpu']:.2f} ms in the emulator"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=WRITERS, help="groups of 100 leads written at once")
    parser.add_argument(
        "--no-naive", action="store_true", help="only the import (its RSS at 10,000 rows and at the end)"
    )
    parser.add_argument("--side", choices=["naive", "import"], help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # a child: one side, figures as JSON on the last line
        from reengage_cli.emulator.server import use_endpoint

        use_endpoint(os.environ["AWS_ENDPOINT_URL"], os.environ)
        now = datetime.fromisoformat(args.now)
        figures = run_naive(Path(args.file)) if args.side == "naive" else run_import(Path(args.file), now, args.writers)
        print(json.dumps(figures))
        return

    from reengage_cli.emulator.server import use_endpoint

    now = datetime.now(UTC).replace(microsecond=0)
    server, endpoint = start_emulator()
    try:
        use_endpoint(endpoint, os.environ)
        clone_leads_table(NAIVE_TABLE)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "leads.csv"
            write_csv(path, args.leads, now)
            size_mb = path.stat().st_size / 2**20
            print(f"{args.leads:,} leads, CSV {size_mb:.1f} MB; emulator at {endpoint} (own process)")
            naive = None if args.no_naive else side("naive", server.pid, endpoint, path, now, args.writers)
            ours = side("import", server.pid, endpoint, path, now, args.writers)
    finally:
        server.terminate()
        server.wait(timeout=30)
    our_rate = _describe(f"reengage import ({args.writers} writers)", ours)
    if naive is not None:
        naive_rate = _describe("naive loop (put_item per lead)", naive)
        print(f"ratio: {our_rate / naive_rate:.1f}x the naive loop")
    print(f"load average at the end (2 cores, shared): {os.getloadavg()[0]:.1f}")
    mark = f"{ours['rss_at_mark_mb']:.0f} MB after {RSS_MARK:,} rows, " if ours["rss_at_mark_mb"] else ""
    print(f"import peak RSS: {mark}{ours['rss_mb']:.0f} MB after {ours['leads']:,}")


if __name__ == "__main__":
    main()
