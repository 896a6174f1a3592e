"""Cold-start import cost of the built handlers, measured the way Lambda loads them.

Runs fresh processes in .venv-lambda (boto3 only, like the runtime) with the SAM build
on the path, and prints the median import time of each handler next to `import boto3`.
Target: the scheduler within 1.5x of `import boto3`, and no handler imports openai.

    make build && .venv/bin/python benchmarks/cold_start.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".aws-sam" / "build"
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
    "import sys, time, json; t = time.perf_counter(); {statement}; "
    "print(json.dumps([time.perf_counter() - t, 'openai' in sys.modules]))"
)


def measure(statement: str, function: str | None, runs: int) -> tuple[float, bool]:
    path = f"{BUILD / function}:{BUILD / 'ReengageLayer' / 'python'}" if function else ""
    samples, openai = [], False
    for _ in range(runs):
        output = subprocess.run(
            [str(PYTHON), "-c", PROBE.format(statement=statement)],
            env={**ENV, "PYTHONPATH": path},
            cwd=BUILD / function if function else ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        seconds, imported_openai = json.loads(output)
        samples.append(seconds)
        openai = openai or imported_openai
    return statistics.median(samples), openai


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    if not (BUILD / "SchedulerFunction" / "app.py").is_file() or not PYTHON.is_file():
        raise SystemExit("run `make build` and `make .venv-lambda/.installed` first (make test does both)")
    baseline, _ = measure("import boto3", None, args.runs)
    print(f"import boto3 (runtime baseline):  {baseline * 1000:6.1f} ms")
    for function in ("SchedulerFunction", "SenderFunction", "CountersFunction", "StatsFunction", "CleanupFunction"):
        seconds, openai = measure("import app", function, args.runs)
        print(
            f"{function:<33} {seconds * 1000:6.1f} ms  = {seconds / baseline:.2f}x boto3"
            f"  openai imported: {'yes' if openai else 'no'}"
        )


if __name__ == "__main__":
    main()
