"""Cold-start import cost of the built handlers, measured the way Lambda loads them.

Runs fresh processes in .venv-lambda (boto3 only, like the runtime) with the SAM build for
this machine's architecture on the path (`make build-host`: the template deploys arm64, so
on an x86_64 machine these are x86_64 figures), and prints the median import time of each
handler next to `import boto3`: wall time, and the CPU time of the import (less sensitive
to other load on the machine).
The runs are interleaved (one of each, then the next round), so a busy spell weighs on the
baseline and the handlers alike.
Targets: the scheduler within 1.5x of `import boto3`, the sender within 1.6x, and no
handler imports openai. On a shared machine the times swing with other load: `--instructions`
counts the instructions of each import instead (valgrind's callgrind, one run each, the
interpreter's start-up subtracted), a figure other load does not move.

    make build-host && .venv/bin/python benchmarks/cold_start.py [--runs 9] [--instructions]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".aws-sam" / "build-host"
PYTHON = ROOT / ".venv-lambda" / "bin" / "python"
ENV = {
    "LEADS_TABLE_NAME": "leads",
    "SEND_LEDGER_TABLE_NAME": "ledger",
    "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
    "SENDER_EMAIL": "sales@example.com",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
}
PROBE = (
    "import sys, time, json; t, c = time.perf_counter(), time.process_time(); {statement}; "
    "print(json.dumps([time.perf_counter() - t, time.process_time() - c, 'openai' in sys.modules]))"
)
BASELINE = "import boto3"
FUNCTIONS = ("SchedulerFunction", "SenderFunction", "CountersFunction", "StatsFunction", "CleanupFunction")


def measure_once(function: str | None) -> tuple[float, float, bool]:
    """(wall seconds, CPU seconds, openai imported) of one fresh process importing the handler."""
    path = f"{BUILD / function}:{BUILD / 'ReengageLayer' / 'python'}" if function else ""
    output = subprocess.run(
        [str(PYTHON), "-c", PROBE.format(statement="import app" if function else BASELINE)],
        env={**ENV, "PYTHONPATH": path},
        cwd=BUILD / function if function else ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wall, cpu, openai = json.loads(output)
    return float(wall), float(cpu), bool(openai)


def instructions(function: str | None) -> int:
    """Instructions executed by a fresh process importing the handler (or boto3, or nothing: None, "")."""
    statement = "pass" if function == "" else "import app" if function else BASELINE
    process = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(PYTHON), "-c", statement],
        env={**ENV, "PYTHONPATH": f"{BUILD / function}:{BUILD / 'ReengageLayer' / 'python'}" if function else ""},
        cwd=BUILD / function if function else ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", process.stderr)
    assert found, process.stderr[-500:]
    return int(found.group(1))


def count_instructions() -> None:
    for function in (None, *FUNCTIONS):  # the first runs write the .pyc files the counted runs read
        measure_once(function)
    start_up = instructions("")
    baseline = instructions(None) - start_up
    print(f"{BASELINE + ' (runtime baseline)':<33} {baseline / 1e6:7.1f} M instructions")
    for function in FUNCTIONS:
        count = instructions(function) - start_up
        print(f"{function:<33} {count / 1e6:7.1f} M instructions  {count / baseline:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--instructions", action="store_true", help="count instructions (valgrind) instead")
    args = parser.parse_args()
    if not (BUILD / "SchedulerFunction" / "app.py").is_file() or not PYTHON.is_file():
        raise SystemExit("run `make build-host` and `make .venv-lambda/.installed` first (make test does both)")
    if args.instructions:
        count_instructions()
        return
    targets: tuple[str | None, ...] = (None, *FUNCTIONS)
    samples: dict[str | None, list[tuple[float, float, bool]]] = {target: [] for target in targets}
    for _ in range(args.runs):
        for target in targets:
            samples[target].append(measure_once(target))
    wall = {target: statistics.median(s[0] for s in runs) for target, runs in samples.items()}
    cpu = {target: statistics.median(s[1] for s in runs) for target, runs in samples.items()}
    print(f"{'median of ' + str(args.runs):<33} {'wall':>9}  {'ratio':>6}  {'CPU':>9}  {'ratio':>6}")
    for target in targets:
        openai = any(s[2] for s in samples[target])
        name = target or f"{BASELINE} (runtime baseline)"
        print(
            f"{name:<33} {wall[target] * 1000:6.1f} ms  {wall[target] / wall[None]:5.2f}x"
            f"  {cpu[target] * 1000:6.1f} ms  {cpu[target] / cpu[None]:5.2f}x"
            + ("" if target is None else f"  openai imported: {'yes' if openai else 'no'}")
        )


if __name__ == "__main__":
    main()
