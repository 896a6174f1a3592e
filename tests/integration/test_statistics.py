"""Statistics from counters kept by the stream consumer: the same numbers as a full count, without a scan."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from reengage import wiring
from reengage.domain.clock import utc_now
from reengage.domain.leads import Lead
from reengage.domain.stats import statistics, tally
from reengage.settings import Settings
from tests.conftest import ROOT, Emulator, FakeLambdaContext, load_event, load_handler
from tests.infra.test_dashboard import stream_event
from tests.integration.test_cli import reengage
from tests.integration.test_pipeline import as_sqs_event, lead_row, receive_all, seed


def counted(settings: Settings, now: datetime) -> dict[str, Any]:
    """The statistics from counting every lead in the table."""
    leads = [item for item in wiring.stores(settings).leads.scan() if isinstance(item, Lead)]
    return statistics(*tally(leads), now)


def run_campaign(aws: Emulator) -> None:
    load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    load_handler("sender").lambda_handler(as_sqs_event(receive_all(aws.settings.queue_url)), FakeLambdaContext())


def test_counters_from_the_stream_match_a_full_count(aws: Emulator, tmp_path: Path) -> None:
    rows = [lead_row(n) for n in range(1, 6)] + [lead_row(6, response_status="Converted", follow_up_stage="Followup_1")]
    seed(aws, tmp_path, rows)
    run_campaign(aws)
    boto3.client("dynamodb").delete_item(TableName=aws.settings.leads_table_name, Key={"id": {"S": "lead-005"}})
    # When CountersFunction receives the stream
    response = load_handler("counters").lambda_handler(stream_event(aws), FakeLambdaContext())
    assert response["records"] > 6
    now = utc_now()
    from_counters = statistics(*wiring.counters(aws.settings).read(now, 7), now)
    # Then the counters agree with counting every lead
    assert from_counters == counted(aws.settings, now)
    assert from_counters["total_leads"] == 5 and from_counters["recent_reengagements"] == 4
    assert from_counters["by_followup_stage"] == {"Followup_1": 5}
    assert from_counters["reengagement_success_rate"] == round(1 / 5, 4)


def test_status_reads_counters_and_rebuild_recomputes_them(aws: Emulator, tmp_path: Path) -> None:
    sample = ROOT / "cli" / "reengage_cli" / "data" / "sample_leads.jsonl"
    assert reengage("import", str(sample)).returncode == 0
    assert reengage("run", "--limit", "4").returncode == 0
    status = json.loads(reengage("status", "--json").stdout)
    backlog = status.pop("backlog")
    assert status == counted(aws.settings, utc_now())
    # The backlog is what the schedule index holds due now and claimed, counted here from a scan
    items = boto3.client("dynamodb").scan(TableName=aws.settings.leads_table_name)["Items"]
    cutoff = aws.settings.policy.due_cutoff(utc_now())
    states = [(item.get("schedule_state", {}).get("S"), item.get("schedule_at", {}).get("S", "")) for item in items]
    assert backlog == {
        "due_now": sum(state == "due" and at <= cutoff for state, at in states),
        "claimed": sum(state == "claimed" for state, _ in states),
    }
    assert backlog["due_now"] > 0
    # Another system writes straight to the table, bypassing nothing: the stream sees it too
    boto3.client("dynamodb").update_item(
        TableName=aws.settings.leads_table_name,
        Key={"id": {"S": "lead-001"}},
        UpdateExpression="SET response_status = :c",
        ExpressionAttributeValues={":c": {"S": "Converted"}},
    )
    again = json.loads(reengage("status", "--json").stdout)
    assert again["by_response_status"]["Converted"] == status["by_response_status"]["Converted"] + 1
    # Counters knocked off by hand are put right by a rebuild
    wiring.counters(aws.settings).apply({"total": 1000}, {})
    assert json.loads(reengage("status", "--json").stdout)["total_leads"] == 1030
    rebuilt = json.loads(reengage("status", "--rebuild", "--json").stdout)
    assert rebuilt == again


def test_stats_plot_draws_what_status_says(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(n) for n in range(1, 4)])
    run_campaign(aws)
    svg_path, html_path = tmp_path / "stats.svg", tmp_path / "stats.html"
    assert reengage("stats", "--plot", str(svg_path)).returncode == 0
    assert reengage("stats", "--plot", str(html_path)).returncode == 0
    svg = svg_path.read_text()
    assert svg.startswith("<svg") and "Followed up" in svg and f"{utc_now():%Y-%m-%d}: 3" in svg
    assert "<table>" in html_path.read_text()
    wrong = reengage("stats", "--plot", str(tmp_path / "stats.png"))
    assert wrong.returncode == 2 and "use a .svg or .html file" in wrong.stderr


def test_sample_stream_event_and_cleanup_handler(aws: Emulator) -> None:
    response: dict[str, Any] = load_handler("counters").lambda_handler(
        load_event("stream-lead-changes"), FakeLambdaContext()
    )
    assert response["records"] == 2
    totals, _ = wiring.counters(aws.settings).read(utc_now(), 7)
    assert totals["total"] == 1 and totals["waiting"] == 1 and totals["response:Converted"] == 1
    assert totals["response:No Response"] == 0
    cleaned = load_handler("cleanup").lambda_handler(load_event("weekly-cleanup"), FakeLambdaContext())
    assert cleaned == {"ok": True, "released": 0, "sends_in_doubt": []}
    bad = load_handler("cleanup").lambda_handler({"days": "many"}, FakeLambdaContext())
    assert bad["ok"] is False and "days must be a whole number" in bad["error"]
