"""The `reengage` console script, run as a user runs it, against the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, Emulator

SCRIPT = Path(sys.executable).parent / "reengage"


def reengage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env or dict(os.environ),
        check=False,
    )


def test_import_reports_rejected_rows_and_keeps_the_valid_ones(aws: Emulator, tmp_path: Path) -> None:
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text(
        "id,name,email,engagement_status,email_confidence_level,last_contacted\n"
        "a-1,Ana,ana@example.com,Sent,Real,2026-11-01T09:00:00Z\n"
        "a-2,Bob,bob@@example.com,Sent,Real,2026-11-01T09:00:00Z\n"
        "a-3,Cy,cy@example.com,Sent,Sure,not a time\n"
        "a-1,Ana again,ana2@example.com,Sent,Real,2026-11-01T09:00:00Z\n"
        "a-5,Di,di@example.com,Sent,Sure,2026-11-01T09:00:00Z\n"
    )
    result = reengage("import", str(csv_file))
    assert result.returncode == 1, result.stderr
    assert "Imported 2 leads (2 new, 0 updated)" in result.stdout
    assert "row 2 (lead a-2): email: invalid address: must contain exactly one @" in result.stdout
    assert "row 3 (lead a-3): last_contacted: not an ISO-8601 time: 'not a time'" in result.stdout
    # An upstream system's own vocabulary is kept, never eligible, and said so
    assert "row 5 (lead a-5): email_confidence_level: 'Sure' is not one of" in result.stdout
    assert "row 4 (lead a-1): id: same lead as row 1" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_run_status_outbox_and_health(aws: Emulator) -> None:
    sample = ROOT / "cli" / "reengage_cli" / "data" / "sample_leads.jsonl"
    assert reengage("import", str(sample)).returncode == 0

    dry = reengage("run", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing claimed or sent" in dry.stdout
    assert json.loads(reengage("outbox", "--json").stdout) == []

    run = reengage("run", "--limit", "3")
    assert run.returncode == 0, run.stderr
    assert "Marked for re-engagement: 3" in run.stdout
    assert "Messages sent:       3" in run.stdout
    outbox = json.loads(reengage("outbox", "--json").stdout)
    assert len(outbox) == 3 and all(mail["subject"] and mail["text"] for mail in outbox)

    status = json.loads(reengage("status", "--json").stdout)
    assert status["recent_reengagements"] >= 3
    assert set(status) >= {
        "eligible_for_reengagement",
        "by_followup_stage",
        "by_response_status",
        "recent_reengagements",
        "reengagement_success_rate",
    }
    health = reengage("health")
    assert health.returncode == 0, health.stdout
    assert "[ok] SES sender identity" in health.stdout


def test_env_prints_what_sam_local_invoke_needs(aws: Emulator) -> None:
    shell = reengage("env").stdout
    assert f"export QUEUE_URL={aws.settings.queue_url}" in shell
    sam = json.loads(reengage("env", "--format", "sam-json").stdout)["Parameters"]
    assert sam["LEADS_TABLE_NAME"] == aws.settings.leads_table_name
    assert sam["AWS_ENDPOINT_URL"].startswith("http://host.docker.internal:")


def test_errors_are_one_line_without_traceback(aws: Emulator, tmp_path: Path) -> None:
    missing = reengage("import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "No such file" in missing.stderr
    wrong_type = reengage("import", str(tmp_path / "leads.xlsx"))
    assert "unknown file type .xlsx" in wrong_type.stderr
    bad_limit = reengage("run", "--limit", "0")
    assert bad_limit.returncode == 2 and "limit must be a positive whole number" in bad_limit.stderr
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    outside = reengage("outbox", env=env)
    assert outside.returncode == 2 and "only works against an emulator" in outside.stderr
    for result in (missing, wrong_type, bad_limit, outside):
        assert "Traceback" not in result.stderr


def test_demo_runs_on_its_own(restore_environ: None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "LEADS_", "QUEUE_"))}
    demo = reengage("demo", env=env)
    assert demo.returncode == 0, demo.stderr
    assert "RE-ENGAGEMENT CAMPAIGN COMPLETE" in demo.stdout
    assert "skipped - responded: Converted" in demo.stdout
    assert "nothing is sent twice" in demo.stdout
    assert "clicked one-click unsubscribe: HTTP 200, no redirect" in demo.stdout
    assert "response status Unsubscribed, sequence stopped" in demo.stdout
    assert "response status Interested, sequence stopped" in demo.stdout


def test_preview_shows_the_message_generator_and_verdict_without_sending(aws: Emulator) -> None:
    sample = ROOT / "cli" / "reengage_cli" / "data" / "sample_leads.jsonl"
    assert reengage("import", str(sample)).returncode == 0
    preview = reengage("preview", "lead-011")
    assert preview.returncode == 0, preview.stderr
    assert "Stage:     Followup_2" in preview.stdout
    assert "Generator: template" in preview.stdout and "Quality:   passed" in preview.stdout
    assert "Hi Daniel," in preview.stdout
    first = reengage("preview", "lead-011", "--stage", "Followup_1")
    assert "Stage:     Followup_1" in first.stdout
    assert json.loads(reengage("outbox", "--json").stdout) == []
    missing = reengage("preview", "nobody")
    assert missing.returncode == 2 and "no lead with id 'nobody'" in missing.stderr


def test_dlq_list_and_redrive(aws: Emulator) -> None:
    import boto3

    sqs = boto3.client("sqs")
    dlq = sqs.get_queue_url(QueueName="reengage-local-DeadLetterQueue")["QueueUrl"]
    for number in (1, 2, 3):
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"lead_id": f"lead-{number}", "stage": "Followup_1"}))
    sqs.send_message(QueueUrl=dlq, MessageBody="{broken")
    health = reengage("health")
    assert health.returncode == 1 and "[FAIL] dead-letter queue: 4 failed follow-up requests" in health.stdout

    moved = reengage("dlq", "redrive", "--max", "2")
    assert moved.returncode == 0 and moved.stdout.startswith("Moved 2 follow-up requests")
    waiting = sqs.receive_message(QueueUrl=aws.settings.queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(waiting) == 2
    listed = json.loads(reengage("dlq", "list", "--json").stdout)
    assert len(listed) == 2
    bodies = {message["Body"] for message in waiting} | {letter["body"] for letter in listed}
    assert "{broken" in bodies and len(bodies) == 4  # nothing lost, nothing doubled


def test_mark_stops_a_sequence_from_the_crm(aws: Emulator) -> None:
    sample = ROOT / "cli" / "reengage_cli" / "data" / "sample_leads.jsonl"
    assert reengage("import", str(sample)).returncode == 0
    marked = reengage("mark", "lead-003", "Converted")
    assert marked.returncode == 0 and "marked Converted: no further follow-ups" in marked.stdout
    again = reengage("mark", "lead-003", "Converted")
    assert "already has response status Converted" in again.stdout
    run = reengage("run")
    recipients = [mail["to"] for mail in json.loads(reengage("outbox", "--json").stdout)]
    assert run.returncode == 0 and not any("mike.johnson" in to for to in recipients)
    bad = reengage("mark", "lead-003", "Maybe")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
