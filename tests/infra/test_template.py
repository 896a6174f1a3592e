"""template.yaml is the source of truth: the code and the template must agree."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest

from reengage.adapters.leads_table import SCHEDULE_INDEX_NAME, ScheduleIndex
from reengage.settings import Settings
from reengage_cli.emulator.template import load_template
from tests.conftest import EVENTS, ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]
GLOBAL_ENV = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]


class RecordingEnv(dict[str, str]):
    """An environment that remembers every variable asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def test_every_variable_the_handlers_read_is_set_in_the_template():
    env = RecordingEnv(
        {"LEADS_TABLE_NAME": "t", "SEND_LEDGER_TABLE_NAME": "l", "QUEUE_URL": "q", "SENDER_EMAIL": "a@example.com"}
    )
    Settings.from_env(env)
    assert env.asked, "settings read no variable at all"
    function_env = {
        name
        for resource in RESOURCES.values()
        if resource["Type"] == "AWS::Serverless::Function"
        for name in resource["Properties"].get("Environment", {}).get("Variables", {})
    }
    missing = env.asked - set(GLOBAL_ENV) - function_env
    assert not missing, f"read by the code but not set in template.yaml: {sorted(missing)}"


def test_handlers_read_the_environment_only_through_settings():
    for function in ("scheduler", "sender"):
        tree = ast.parse((ROOT / "functions" / function / "app.py").read_text())
        environ_uses = [
            node for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}
        ]
        assert len(environ_uses) == 1, f"{function}: os.environ must only feed Settings.from_env"


def test_the_sparse_index_matches_the_data_access_model():
    table = RESOURCES["LeadsTable"]["Properties"]
    (index,) = [index for index in table["GlobalSecondaryIndexes"] if index["IndexName"] == SCHEDULE_INDEX_NAME]
    assert index["IndexName"] == SCHEDULE_INDEX_NAME
    keys = {key["KeyType"]: key["AttributeName"] for key in index["KeySchema"]}
    model_keys = {
        "HASH" if attribute.is_hash_key else "RANGE": attribute.attr_name
        for attribute in ScheduleIndex.Meta.attributes.values()  # type: ignore[attr-defined]
    }
    assert keys == model_keys
    assert index["Projection"]["NonKeyAttributes"] == ScheduleIndex.Meta.projection.non_key_attributes
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionProtectionEnabled"] == {"Fn::If": ["IsProd", True, False]}


def test_queue_visibility_is_six_times_the_sender_timeout_with_a_dead_letter_queue():
    queue = RESOURCES["ReengagementQueue"]["Properties"]
    sender_timeout = RESOURCES["SenderFunction"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * sender_timeout
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert queue["SqsManagedSseEnabled"] is True


def test_sender_reports_partial_batch_failures_with_bounded_concurrency():
    event = RESOURCES["SenderFunction"]["Properties"]["Events"]["Queue"]["Properties"]
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "SesMaxSendRate"}
    assert event["BatchSize"] == {"Ref": "SenderBatchSize"}


def test_scheduler_runs_often_enough_to_catch_every_send_window_and_never_scans():
    schedule = RESOURCES["SchedulerFunction"]["Properties"]["Events"]["Daily"]
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "SchedulerScheduleExpression"}
    parameters = TEMPLATE["Parameters"]
    assert parameters["SchedulerScheduleExpression"]["Default"] == "rate(15 minutes)"
    assert (parameters["SendWindow"]["Default"], parameters["SendDays"]["Default"]) == ("08:00-11:00", "mon-fri")
    assert schedule["Properties"]["ScheduleExpressionTimezone"] == {"Ref": "ScheduleTimezone"}
    actions = set()
    for statement in statements("SchedulerFunction"):
        actions |= set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    assert "dynamodb:Scan" not in actions and "dynamodb:Query" in actions


def statements(function: str) -> list[dict[str, Any]]:
    """A function's policy statements, conditional ones (Fn::If) included."""
    found = []
    for statement in RESOURCES[function]["Properties"]["Policies"][0]["Statement"]:
        if "Fn::If" in statement:
            _, statement, _ = statement["Fn::If"]
        found.append(statement)
    return found


def test_policies_are_scoped_to_the_stack_resources():
    for function in ("SchedulerFunction", "SenderFunction"):
        for statement in statements(function):
            assert statement["Resource"] != "*", f"{function}: {statement['Action']} on every resource"
    sender = {str(statement["Action"]): statement["Resource"] for statement in statements("SenderFunction")}
    assert sender["secretsmanager:GetSecretValue"] == {"Ref": "OpenAIApiKeySecretArn"}
    (ses,) = [s for s in statements("SenderFunction") if "ses:SendEmail" in s["Action"] and "identity/" in str(s)]
    assert ses["Condition"]["StringEquals"]["ses:FromAddress"] == {"Ref": "SenderEmail"}


@pytest.mark.parametrize("name", ["DaysBetweenFollowups", "MaxFollowups", "DryRun", "SenderEmail"])
def test_parameters_have_working_defaults(name):
    assert "Default" in TEMPLATE["Parameters"][name]


def test_defaults_match_the_settings_defaults():
    parameters = TEMPLATE["Parameters"]
    defaults = Settings(leads_table_name="t", send_ledger_table_name="l", queue_url="q", sender_email="a@example.com")
    assert parameters["DaysBetweenFollowups"]["Default"] == defaults.days_between_followups
    assert parameters["MaxFollowups"]["Default"] == defaults.max_followups
    assert parameters["DryRun"]["Default"] == str(defaults.dry_run).lower()
    assert parameters["ClaimTimeoutMinutes"]["Default"] == defaults.claim_timeout_minutes


def test_every_function_has_a_sample_event():
    events = {path.stem for path in EVENTS.glob("*.json")}
    assert {"scheduled", "sqs-follow-ups"} <= events
    for path in EVENTS.glob("*.json"):
        json.loads(path.read_text())


def test_samconfig_has_dev_and_prod():
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["default"]["global"]["parameters"]["stack_name"] == "reengage-dev"
    assert config["prod"]["global"]["parameters"]["stack_name"] == "reengage-prod"
    assert "Environment=prod" in config["prod"]["deploy"]["parameters"]["parameter_overrides"]


@pytest.mark.parametrize(
    ("alarm", "metric", "threshold"),
    [
        ("BounceRateAlarm", "Reputation.BounceRate", 0.05),
        ("BounceRateWarningAlarm", "Reputation.BounceRate", 0.02),
        ("ComplaintRateAlarm", "Reputation.ComplaintRate", 0.001),
        ("ComplaintRateWarningAlarm", "Reputation.ComplaintRate", 0.0005),
        ("DeadLetterQueueNotEmptyAlarm", "ApproximateNumberOfMessagesVisible", 0),
        ("SchedulerDidNotRunAlarm", "SchedulerRuns", 1),
    ],
)
def test_alarms_guard_the_failure_modes(alarm: str, metric: str, threshold: float) -> None:
    props = RESOURCES[alarm]["Properties"]
    assert props["MetricName"] == metric and props["Threshold"] == threshold
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    if alarm == "SchedulerDidNotRunAlarm":
        assert props["Period"] * props["EvaluationPeriods"] == 25 * 3600
        assert props["TreatMissingData"] == "breaching"


def test_rate_alarms_use_metric_math():
    sender = RESOURCES["SenderErrorRateAlarm"]["Properties"]
    assert any("errors / invocations" in query.get("Expression", "") for query in sender["Metrics"])
    assert sender["Threshold"] == 5
    stopped = RESOURCES["SendsStoppedWhileDueAlarm"]["Properties"]
    assert any(query.get("Id") == "stopped" and query["ReturnData"] for query in stopped["Metrics"])
