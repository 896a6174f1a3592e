"""The built functions import and run the way Lambda runs them: function artifact + layer +
only what the Lambda Python runtime ships (a venv with boto3 alone). A package missing
from the layer fails here.

They run from `make build-host`: the template built for this machine's architecture (the
deployed build is arm64, whose aarch64 wheels an x86_64 machine cannot load);
tests/infra/test_arm64_build.py checks the two builds hold the same packages."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EVENTS, ROOT, Emulator

BUILD = ROOT / ".aws-sam" / "build-host"
LAMBDA_PYTHON = ROOT / ".venv-lambda" / "bin" / "python"

INVOKE = """
import json, sys, time
started = time.perf_counter()
import app
import_seconds = time.perf_counter() - started
class Context:
    function_name = "fn"; memory_limit_in_mb = 256; aws_request_id = "req"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    def get_remaining_time_in_millis(self): return 300000
event = json.load(open(sys.argv[1]))
result = app.lambda_handler(event, Context())
print(json.dumps({"result": result, "import_seconds": import_seconds, "openai": "openai" in sys.modules}))
"""


def run_built(function: str, event: Path, env: dict[str, str]) -> dict[str, object]:
    if not (BUILD / function / "app.py").is_file():
        pytest.fail("no SAM build for this machine: run `make build-host` (make test does) before this test")
    if not LAMBDA_PYTHON.is_file():
        pytest.fail("no Lambda runtime venv: run `make test`, which creates .venv-lambda")
    layer = BUILD / "ReengageLayer" / "python"
    process = subprocess.run(
        [str(LAMBDA_PYTHON), "-c", INVOKE, str(event)],
        cwd=BUILD / function,
        env={**env, "PYTHONPATH": f"{BUILD / function}:{layer}", "PYTHONNOUSERSITE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return {**json.loads(process.stdout.strip().splitlines()[-1]), "log": process.stdout}


def lambda_env(aws: Emulator) -> dict[str, str]:
    keep = ("PATH", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
    return {**{key: os.environ[key] for key in keep if key in os.environ}, **aws.environment}


def test_built_scheduler_runs_with_only_the_runtime_and_the_layer(aws: Emulator) -> None:
    output = run_built("SchedulerFunction", EVENTS / "scheduled-dry-run.json", lambda_env(aws))
    assert output["result"] == {**output["result"], "ok": True, "dry_run": True}  # type: ignore[dict-item]
    assert output["openai"] is False


def test_built_sender_runs_with_only_the_runtime_and_the_layer(aws: Emulator) -> None:
    output = run_built("SenderFunction", EVENTS / "sqs-follow-ups.json", lambda_env(aws))
    # The sample event's leads do not exist in an empty table: counted rejections, never retried.
    records = json.loads((EVENTS / "sqs-follow-ups.json").read_text())["Records"]
    assert output["result"] == {"batchItemFailures": []}
    rejected = [line for line in str(output["log"]).splitlines() if '"input rejected"' in line]
    assert len(rejected) == len(records) == 2
    assert output["openai"] is False


def test_built_sender_writes_with_ai_when_a_key_is_configured(aws: Emulator, openai_stub: Any, tmp_path: Path) -> None:
    import boto3

    from tests.integration.test_ai_writer import GOOD_1
    from tests.integration.test_pipeline import as_sqs_event, lead_row, receive_all, seed

    boto3.client("secretsmanager").create_secret(Name="openai-key", SecretString="sk-built")
    seed(aws, tmp_path, [lead_row(1, company="Acme Robotics", name="Person 1")])
    run_built("SchedulerFunction", EVENTS / "scheduled.json", lambda_env(aws))
    event_file = tmp_path / "batch.json"
    event_file.write_text(json.dumps(as_sqs_event(receive_all(aws.settings.queue_url))))
    openai_stub.draft("A thought for Acme Robotics", GOOD_1)
    env = {**lambda_env(aws), "OPENAI_API_KEY_SECRET": "openai-key", "OPENAI_BASE_URL": openai_stub.base_url}
    output = run_built("SenderFunction", event_file, env)
    # openai, httpx2 and the Secrets Manager client all come from the layer
    assert output["result"] == {"batchItemFailures": []} and output["openai"] is True
    assert openai_stub.headers[0]["authorization"] == "Bearer sk-built"
    assert [mail.subject for mail in aws.outbox()] == ["A thought for Acme Robotics"]


@pytest.mark.parametrize(
    ("function", "event", "expected"),
    [
        ("CountersFunction", "stream-lead-changes.json", {"records": 2}),
        ("StatsFunction", "hourly-stats.json", {"total_leads": 1}),
        ("CleanupFunction", "weekly-cleanup.json", {"ok": True, "released": 0}),
        ("UnsubscribeFunction", "unsubscribe-one-click.json", {"statusCode": 403}),
        ("FeedbackFunction", "ses-bounce.json", {"unknown_lead": 1}),
        ("SyncFunction", "crm-sync.json", {"sync": "off"}),
        ("SyncFunction", "stream-lead-changes.json", {"records": 2, "pushed": 0}),
    ],
)
def test_built_upkeep_functions_run_with_only_the_runtime_and_the_layer(
    aws: Emulator, function: str, event: str, expected: dict[str, object]
) -> None:
    if function == "StatsFunction":
        run_built("CountersFunction", EVENTS / "stream-lead-changes.json", lambda_env(aws))
    output = run_built(function, EVENTS / event, lambda_env(aws))
    result = output["result"]
    assert isinstance(result, dict) and result | expected == result
    assert output["openai"] is False
