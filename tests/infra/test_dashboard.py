"""The dashboard and the alarms show only metrics the code emits, with the same namespace, names and dimensions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from reengage.domain.leads import STAGE_ORDER, ResponseStatus, SkipReason
from reengage.observability import METRICS, METRICS_NAMESPACE
from reengage_cli.emulator.template import load_template
from tests.conftest import Emulator, FakeLambdaContext, load_event, load_handler
from tests.integration.test_pipeline import as_sqs_event, lead_row, receive_all, seed

TEMPLATE = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
DIMENSION_VALUES = {
    "Stage": {stage.value for stage in STAGE_ORDER},
    "Reason": {reason.value for reason in SkipReason},
    "ResponseStatus": {status.value for status in ResponseStatus},
    "LocalHour": {f"{hour:02d}" for hour in range(24)},
}
# Emitted only when a run has something of the kind (tests/integration/test_send_windows.py emits them).
CONDITIONAL = {"LeadsByResponse", "FollowUpsDeferred"}


def dashboard_metrics() -> list[tuple[str, str, dict[str, str]]]:
    body = TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    document = json.loads(re.sub(r"\$\{[^}]+\}", "resolved", body))
    found = []
    for widget in document["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            values = [value for value in row if isinstance(value, str)]
            if len(values) >= 2:
                namespace, name, *pairs = values
                found.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


def alarm_metrics() -> list[tuple[str, str, dict[str, str]]]:
    found = []
    for resource in TEMPLATE["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        stats = [query["MetricStat"]["Metric"] for query in props.get("Metrics", []) if "MetricStat" in query]
        if "MetricName" in props:
            stats.append(props)
        for metric in stats:
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", []) if isinstance(d["Value"], str)}
            found.append((metric["Namespace"], metric["MetricName"], dims))
    return found


@pytest.mark.parametrize("source", [dashboard_metrics, alarm_metrics])
def test_every_reengage_metric_is_in_the_catalogue_with_its_dimensions(source: Any) -> None:
    ours = [metric for metric in source() if metric[0] == METRICS_NAMESPACE]
    assert ours, "no Reengage metric found"
    for _, name, dims in ours:
        assert name in METRICS, f"{name} is not emitted by the code"
        extra = METRICS[name]
        assert dims.get("service") == "reengage", f"{name}: the service dimension is missing"
        assert set(dims) == {"service"} | ({extra} if extra else set()), f"{name}: dimensions {dims}"
        if extra:
            assert dims[extra] in DIMENSION_VALUES[extra], f"{name}: {extra}={dims[extra]} never emitted"


def stream_event(aws: Emulator) -> dict[str, Any]:
    """Everything on the leads table's stream so far, as the DynamoDB event source would deliver it."""
    import boto3

    arn = boto3.client("dynamodb").describe_table(TableName=aws.settings.leads_table_name)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams")
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        records += streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"]
    return {"Records": [{**record, "eventSourceARN": arn} for record in records]}


def emitted(output: str) -> set[tuple[str, frozenset[str]]]:
    """(metric name, dimension names) of every EMF line printed."""
    found = set()
    for line in output.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == METRICS_NAMESPACE
            for dimensions in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    found.add((metric["Name"], frozenset(dimensions)))
    return found


def test_the_handlers_emit_what_the_dashboard_shows(aws: Emulator, tmp_path: Path, capsys: Any) -> None:
    # Given a campaign with both stages, a skip, and the hourly statistics
    seed(aws, tmp_path, [lead_row(1), lead_row(2, follow_up_stage="Followup_1"), lead_row(3)])
    load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    batch = as_sqs_event(receive_all(aws.settings.queue_url))
    sender = load_handler("sender")
    sender.lambda_handler(batch, FakeLambdaContext())
    sender.lambda_handler(batch, FakeLambdaContext())  # redelivered: skipped
    load_handler("counters").lambda_handler(stream_event(aws), FakeLambdaContext())
    load_handler("stats").lambda_handler(load_event("hourly-stats"), FakeLambdaContext())
    load_handler("cleanup").lambda_handler(load_event("weekly-cleanup"), FakeLambdaContext())
    printed = emitted(capsys.readouterr().out)
    emitted_names = {name for name, _ in printed}
    # LeadsByResponse only appears for response states some lead has; this campaign has none.
    assert "LeadsByStage" in emitted_names
    for namespace, name, dims in dashboard_metrics() + alarm_metrics():
        if namespace != METRICS_NAMESPACE or (name in CONDITIONAL and name not in emitted_names):
            continue
        assert (name, frozenset(dims)) in printed, f"{name} {sorted(dims)} shown but never emitted"
