"""What the infrastructure costs: $ per 1,000 follow-ups and the fixed monthly cost at zero traffic.

Reads the counts benchmarks/scale.py measured (`--json`), the functions' memory and
architecture from template.yaml, and prices them at us-east-1 list prices (below, with
their dates). What cannot be measured on the emulator is modelled and says so: the
duration of an invocation is its calls times the service latencies below plus the CPU
time the code itself takes per email, measured by scale.py on this machine.

    .venv/bin/python benchmarks/cost.py figures.json [--markdown]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared"), str(ROOT / "cli")]

from benchmarks.scale import per_email as figures_per_email  # noqa: E402
from reengage_cli.emulator.template import load_template  # noqa: E402

# us-east-1 list prices (checked 2026-11; on-demand DynamoDB after the November 2024 reduction).
PRICE: dict[str, Any] = {
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "dynamodb_gb_month": 0.25,
    "dynamodb_pitr_gb_month": 0.20,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s": {"arm64": 0.0000133334, "x86_64": 0.0000166667},
    "sqs_request": 0.40 / 1e6,  # one request per API call (a batch of 10 under 64 KB is one request)
    "sns_publish": 0.50 / 1e6,  # SNS -> Lambda deliveries are free
    "xray_trace": 5.00 / 1e6,  # Tracing: Active records a trace per invocation
    "secrets_month": 0.40,
    "secrets_call": 0.05 / 1e4,
    "kms_key_month": 1.00,
    "alarm_month": 0.10,
    "dashboard_month": 3.00,
    "metric_month": 0.30,  # custom metrics (EMF), first 10,000 tier
    "logs_gb": 0.50,
    "scheduler_invocation": 1.00 / 1e6,  # EventBridge Scheduler, after the free tier
    "ses_per_1000": 0.10,  # SES outbound, for comparison (not infrastructure)
}
# Modelled service latencies in Lambda (ms): typical p50 in-region figures, not measured here.
LATENCY_MS = {"dynamodb": 6, "dynamodb.TransactWriteItems": 15, "sqs": 12, "sesv2": 45, "secretsmanager": 20}
MIN_BILLED_MS = 1
SENDER_BATCH = 10
LOG_BYTES_PER_EMAIL = 1500  # sender + feedback JSON log lines per email (measured from the handlers' output)


def function_config(template: dict[str, Any], logical: str) -> tuple[float, str]:
    globals_ = template.get("Globals", {}).get("Function", {})
    props = template["Resources"][logical]["Properties"]
    memory = props.get("MemorySize", globals_.get("MemorySize", 128))
    arch = (props.get("Architectures") or globals_.get("Architectures") or ["x86_64"])[0]
    return memory / 1024, arch


def traced(template: dict[str, Any], logical: str) -> bool:
    """Tracing: Active records a trace per invocation (PassThrough records none of its own)."""
    globals_ = template.get("Globals", {}).get("Function", {})
    return bool(template["Resources"][logical]["Properties"].get("Tracing", globals_.get("Tracing")) == "Active")


def latency_ms(calls: dict[str, float]) -> float:
    total = 0.0
    for operation, count in calls.items():
        service = operation.split(".")[0]
        total += count * LATENCY_MS.get(operation, LATENCY_MS.get(service, 10))
    return total


def per_thousand(figures: dict[str, Any], template: dict[str, Any]) -> dict[str, float]:
    """Infrastructure $ per 1,000 follow-ups sent, by service."""
    emails = figures["emails"]
    steps = figures["steps"]
    per_email = figures_per_email(figures)  # prorated when only part of the claims was sent
    calls = per_email["calls"]
    cost: dict[str, float] = {}
    cost["DynamoDB writes"] = per_email["write_units"] * PRICE["dynamodb_wru"]
    cost["DynamoDB reads"] = per_email["read_units"] * PRICE["dynamodb_rru"]
    sqs_calls = sum(n for op, n in calls.items() if op.startswith("sqs."))
    cost["SQS"] = sqs_calls * PRICE["sqs_request"]
    # SNS: one publish per SES event the configuration set sends (the feedback step's events).
    events_per_email = steps["feedback"].get("events", 0) / emails if emails else 0
    cost["SNS"] = events_per_email * PRICE["sns_publish"]
    cost["Secrets Manager"] = calls.get("secretsmanager.GetSecretValue", 0) * PRICE["secrets_call"]
    # Lambda: invocations and GB-s per email, by function.
    lambda_cost = traces = 0.0
    invocations = {
        "SchedulerFunction": 0.0,  # per scheduled run, not per email: in the fixed cost
        "SenderFunction": 1 / SENDER_BATCH,
        "FeedbackFunction": events_per_email,
        "CountersFunction": steps.get("counters", {}).get("invocations", 0) / emails if emails else 0,
    }
    step_of = {"SenderFunction": "sender", "FeedbackFunction": "feedback", "CountersFunction": "counters"}
    for function, per in invocations.items():
        gb, arch = function_config(template, function)
        step = steps.get(step_of.get(function, "scheduler"), {})
        step_calls = {op: n / emails for op, n in step.get("calls", {}).items() if not op.startswith("dynamodbstreams")}
        cpu_ms = (step.get("cpu_seconds") or 0.0) * 1000 / emails if emails else 0.0
        seconds = (latency_ms(step_calls) + cpu_ms) / 1000
        if function == "SchedulerFunction":
            seconds = 0.0
        lambda_cost += per * PRICE["lambda_request"] + seconds * gb * PRICE["lambda_gb_s"][arch]
        traces += per if traced(template, function) else 0.0
    scheduler_gb, scheduler_arch = function_config(template, "SchedulerFunction")
    # The scheduler per lead it claimed (with --send-limit, more were claimed than sent).
    claimed = sum(run["marked"] for run in steps["scheduler"].get("runs", [])) or emails or 1
    scheduler_calls = {op: n / claimed for op, n in steps["scheduler"]["calls"].items()}
    scheduler_cpu_ms = (steps["scheduler"].get("cpu_seconds") or 0.0) * 1000 / claimed
    scheduler_seconds = (latency_ms(scheduler_calls) / 16 + scheduler_cpu_ms) / 1000
    lambda_cost += scheduler_seconds * scheduler_gb * PRICE["lambda_gb_s"][scheduler_arch]
    cost["Lambda"] = lambda_cost
    # An upper bound: X-Ray's default rule traces the first request each second and 5% of the rest.
    cost["X-Ray (every traced invocation: upper bound)"] = traces * PRICE["xray_trace"]
    cost["CloudWatch Logs"] = LOG_BYTES_PER_EMAIL / 1e9 * PRICE["logs_gb"]
    return {name: value * 1000 for name, value in cost.items()}


def fixed_monthly(figures: dict[str, Any], template: dict[str, Any]) -> dict[str, float]:
    """$ per month with no follow-up due: schedules, idle scheduler runs, and what exists."""
    resources = template["Resources"].values()
    count = {kind: sum(1 for r in resources if r.get("Type") == kind) for kind in {r.get("Type") for r in resources}}
    runs = 30 * 24 * 4  # rate(15 minutes)
    idle = figures.get("idle_run", {})
    idle_calls = idle.get("calls", {})
    scheduler_gb, scheduler_arch = function_config(template, "SchedulerFunction")
    idle_seconds = (latency_ms(idle_calls) + idle.get("cpu_ms", 0.0)) / 1000
    hourly, weekly = 30 * 24, 4.3
    cost = {
        "Scheduler runs (every 15 min, nothing due)": runs
        * (
            PRICE["lambda_request"]
            + idle_seconds * scheduler_gb * PRICE["lambda_gb_s"][scheduler_arch]
            + PRICE["scheduler_invocation"]
            + PRICE["xray_trace"]
            + idle.get("read_units", 0) * PRICE["dynamodb_rru"]
        ),
        "Statistics (hourly) and cleanup (weekly) runs": (hourly + weekly)
        * (PRICE["lambda_request"] + 0.5 * 0.25 * PRICE["lambda_gb_s"]["arm64"] + PRICE["xray_trace"]),
        "CloudWatch alarms": count.get("AWS::CloudWatch::Alarm", 0) * PRICE["alarm_month"],
        "CloudWatch dashboard": count.get("AWS::CloudWatch::Dashboard", 0) * PRICE["dashboard_month"],
        "Custom metrics published while idle": len(idle.get("metrics", [])) * PRICE["metric_month"],
        "Secrets Manager secrets": count.get("AWS::SecretsManager::Secret", 0) * PRICE["secrets_month"],
        "KMS customer-managed key": count.get("AWS::KMS::Key", 0) * PRICE["kms_key_month"],
    }
    stored_gb = figures.get("stored_bytes", 0) / 1e9
    cost[f"DynamoDB storage + PITR ({figures['leads']:,} leads)"] = stored_gb * (
        PRICE["dynamodb_gb_month"] + PRICE["dynamodb_pitr_gb_month"]
    )
    return cost


def markdown(per_1000: dict[str, float], fixed: dict[str, float], figures: dict[str, Any]) -> str:
    lines = [
        f"Measured by `benchmarks/scale.py --leads {figures['leads']}` ({figures['emails']:,} follow-ups), "
        "priced by `benchmarks/cost.py` at us-east-1 list prices.",
        "",
        "| per 1,000 follow-ups | $ |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {value:.4f} |" for name, value in sorted(per_1000.items(), key=lambda item: -item[1])]
    lines.append(f"| **infrastructure total** | **{sum(per_1000.values()):.4f}** |")
    lines.append(f"| SES itself (for comparison) | {PRICE['ses_per_1000']:.4f} |")
    lines += ["", "| fixed, per month at zero traffic | $ |", "|---|---:|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in sorted(fixed.items(), key=lambda item: -item[1])]
    lines.append(f"| **fixed total** | **{sum(fixed.values()):.2f}** |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", help="the JSON file benchmarks/scale.py --json wrote")
    parser.add_argument("--markdown", action="store_true", help="print the README's cost tables")
    args = parser.parse_args()
    figures = json.loads(Path(args.figures).read_text())
    template = load_template(ROOT / "template.yaml")
    per_1000 = per_thousand(figures, template)
    fixed = fixed_monthly(figures, template)
    if args.markdown:
        print(markdown(per_1000, fixed, figures))
        return
    print(f"per 1,000 follow-ups: ${sum(per_1000.values()):.4f} infrastructure (SES itself: $0.10)")
    for name, value in sorted(per_1000.items(), key=lambda item: -item[1]):
        print(f"  {name:<24} ${value:.4f}  ({value / sum(per_1000.values()):.0%})")
    print(f"fixed per month at zero traffic: ${sum(fixed.values()):.2f}")
    for name, value in sorted(fixed.items(), key=lambda item: -item[1]):
        print(f"  {name:<52} ${value:.2f}")


if __name__ == "__main__":
    main()
