"""What no scanner and no emulator checks: the template wiring that only fails in AWS.

The emulator enforces each function's identity policy (tests/integration), but not resource
policies (KMS key policies, SNS topic policies, bucket policies) nor conditions such as
`ses:FromAddress`; those are checked here against what AWS documents.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from reengage_cli.emulator.template import load_template
from tests.conftest import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = sorted(name for name, spec in RESOURCES.items() if spec["Type"] == "AWS::Serverless::Function")
# Invoked asynchronously (SNS, S3, EventBridge Scheduler): a failed event is retried twice, then lost
# unless the function has an on-failure destination.
ASYNC_FUNCTIONS = ["CleanupFunction", "FeedbackFunction", "ReplyFunction", "SchedulerFunction", "StatsFunction"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(function: str) -> list[dict[str, Any]]:
    found = []
    for statement in RESOURCES[function]["Properties"]["Policies"][0]["Statement"]:
        if "Fn::If" in statement:
            _, statement, _ = statement["Fn::If"]
        found.append(statement)
    return found


def granted(function: str, action: str) -> list[Any]:
    """The resources a function's own policy grants `action` on."""
    resources: list[Any] = []
    for statement in statements(function):
        if statement["Effect"] == "Allow" and action in as_list(statement["Action"]):
            resources += as_list(statement["Resource"])
    return resources


def test_the_sender_may_send_through_its_configuration_set():
    # SES authorizes SendEmail on the identity AND on the configuration set named in the request.
    resources = granted("SenderFunction", "ses:SendEmail")
    assert {
        "Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:configuration-set/${SesConfigurationSet}"
    } in resources
    identity = [s for s in statements("SenderFunction") if "identity/" in str(s["Resource"])]
    assert identity and all(
        s["Condition"]["StringEquals"]["ses:FromAddress"] == {"Ref": "SenderEmail"} for s in identity
    )


@pytest.mark.parametrize("function", ["SchedulerFunction", "ReplyFunction"])
def test_functions_that_read_the_ledger_may_get_its_items(function: str) -> None:
    # The scheduler settles abandoned locks and the reply matcher reads our own Message-ID's record.
    assert {"Fn::GetAtt": ["SendLedgerTable", "Arn"]} in granted(function, "dynamodb:GetItem")


def topics_published_by(service: str) -> set[str]:
    topics: set[str] = set()
    for spec in RESOURCES.values():
        props = spec.get("Properties", {})
        if service == "ses" and spec["Type"] == "AWS::SES::ConfigurationSetEventDestination":
            topics.add(props["EventDestination"]["SnsDestination"]["TopicARN"]["Ref"])
        if service == "cloudwatch" and spec["Type"] == "AWS::CloudWatch::Alarm":
            for action in props.get("AlarmActions", []) + props.get("OKActions", []):
                topics.add(action["Ref"])
    return topics


@pytest.mark.parametrize("service", ["ses", "cloudwatch"])
def test_topics_that_aws_services_publish_to_use_a_key_those_services_may_use(service: str) -> None:
    # An AWS-managed key (alias/aws/sns) has a fixed policy that grants no service principal:
    # SES events and alarm notifications to such a topic are dropped.
    topics = topics_published_by(service)
    assert topics
    for topic in topics:
        key = RESOURCES[topic]["Properties"].get("KmsMasterKeyId")
        assert isinstance(key, dict), f"{topic} must use the stack's customer-managed key, not {key!r}"
        key_id = key.get("Ref") or key["Fn::GetAtt"][0]
        assert RESOURCES[key_id]["Type"] == "AWS::KMS::Key"
        policy = RESOURCES[key_id]["Properties"]["KeyPolicy"]["Statement"]
        grants = [
            s
            for s in policy
            if s["Effect"] == "Allow"
            and f"{service}.amazonaws.com" in as_list(s.get("Principal", {}).get("Service", []))
        ]
        actions = {action for s in grants for action in as_list(s["Action"])}
        assert {"kms:GenerateDataKey*", "kms:Decrypt"} <= actions, f"{key_id} does not let {service} publish to {topic}"


def test_the_ses_events_topic_accepts_only_our_configuration_set():
    (policy,) = [
        spec["Properties"]
        for spec in RESOURCES.values()
        if spec["Type"] == "AWS::SNS::TopicPolicy" and {"Ref": "SesEventsTopic"} in spec["Properties"]["Topics"]
    ]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"}
    source_arn = {**statement["Condition"].get("ArnEquals", {}), **statement["Condition"].get("ArnLike", {})}
    assert "configuration-set/${SesConfigurationSet}" in source_arn["aws:SourceArn"]["Fn::Sub"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_has_its_own_log_group(function: str) -> None:
    groups = [
        spec
        for spec in RESOURCES.values()
        if spec["Type"] == "AWS::Logs::LogGroup"
        and spec["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    ]
    assert len(groups) == 1, f"{function} has no explicit log group (retention, deleted with the stack)"
    assert groups[0].get("Condition") == RESOURCES[function].get("Condition")


def test_reply_reads_only_the_inbound_bucket():
    name = RESOURCES["InboundMailBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    assert granted("ReplyFunction", "s3:GetObject") == [{"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{name}/inbound/*"}]
    assert granted("ReplyFunction", "s3:ListBucket") == [{"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{name}"}]


def test_the_inbound_bucket_refuses_plain_http():
    statements_ = RESOURCES["InboundMailBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements_
    )


def test_the_link_signing_secret_outlives_the_stack():
    # A new key would void every unsubscribe link already sent.
    secret = RESOURCES["UnsubscribeKeySecret"]
    assert secret["DeletionPolicy"] == "Retain" and secret["UpdateReplacePolicy"] == "Retain"


def test_the_public_unsubscribe_function_has_reserved_concurrency():
    assert "ReservedConcurrentExecutions" in RESOURCES["UnsubscribeFunction"]["Properties"]


def test_schedule_names_include_the_stack_name():
    # Without a name, SAM names schedules after the logical ids: dev and prod in one account collide.
    for function in FUNCTIONS:
        for event in RESOURCES[function]["Properties"].get("Events", {}).values():
            if event["Type"] == "ScheduleV2":
                assert "${AWS::StackName}" in event["Properties"]["Name"]["Fn::Sub"]


@pytest.mark.parametrize("function", ASYNC_FUNCTIONS)
def test_every_asynchronously_invoked_function_has_a_failure_destination(function: str) -> None:
    config = RESOURCES[function]["Properties"]["EventInvokeConfig"]
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]},
    }


def test_the_stream_mapping_has_a_failure_destination_and_alarms_watch_both():
    stream = RESOURCES["CountersFunction"]["Properties"]["Events"]["LeadChanges"]["Properties"]
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}
    alarms = {
        spec["Properties"].get("MetricName"): spec["Properties"]
        for spec in RESOURCES.values()
        if spec["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert alarms["IteratorAge"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "CountersFunction"}}]
    failed = [
        spec["Properties"]
        for spec in RESOURCES.values()
        if spec["Type"] == "AWS::CloudWatch::Alarm"
        and spec["Properties"].get("Dimensions")
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["FailedEventsQueue", "QueueName"]}}]
    ]
    assert failed and failed[0]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_a_sender_domain_gets_easy_dkim_a_custom_mail_from_and_its_dns_records_as_outputs():
    # Gmail/Yahoo bulk-sender rules: SPF and DKIM aligned with the From domain, and DMARC.
    identity = RESOURCES["SenderDomainIdentity"]
    assert identity["Condition"] == "HasSenderDomain"
    props = identity["Properties"]
    assert props["EmailIdentity"] == {"Ref": "SenderDomain"}
    assert props["DkimSigningAttributes"]["NextSigningKeyLength"] == "RSA_2048_BIT"
    assert props["MailFromAttributes"]["MailFromDomain"] == {"Fn::Sub": "${MailFromSubdomain}.${SenderDomain}"}
    outputs = TEMPLATE["Outputs"]
    for number in (1, 2, 3):
        value = outputs[f"DkimRecord{number}"]["Value"]["Fn::Sub"]
        assert f"${{SenderDomainIdentity.DkimDNSTokenName{number}}}" in value and "CNAME" in value
    assert "feedback-smtp.${AWS::Region}.amazonses.com" in outputs["MailFromMxRecord"]["Value"]["Fn::Sub"]
    assert "v=spf1 include:amazonses.com" in outputs["MailFromSpfRecord"]["Value"]["Fn::Sub"]
    assert "v=DMARC1" in outputs["DmarcRecord"]["Value"]["Fn::Sub"]
    assert all(outputs[name]["Condition"] == "HasSenderDomain" for name in ("DkimRecord1", "MailFromMxRecord"))


def _references(value: Any) -> set[str]:
    """Logical ids a template value refers to (Ref, GetAtt, Sub), as CloudFormation orders creation."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else str(inner).split(".", 1)[0])
            elif key == "Fn::Sub":
                text, variables = (inner, {}) if isinstance(inner, str) else (inner[0], inner[1])
                names = {name.split(".", 1)[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                found |= (names - set(variables)) | _references(variables)
            else:
                found |= _references(inner)
    return found


def test_the_deployed_stack_has_no_circular_dependency() -> None:
    # What CloudFormation builds after the SAM transform, with every optional part on (conditions
    # ignored: a cycle among conditional resources fails the deploy that turns them on).
    from reengage_cli.emulator.iam import _translated

    path = ROOT / "template.yaml"
    resources = _translated(path, path.stat().st_mtime, "us-east-1")["Resources"]
    edges = {
        name: (_references(spec) | set(as_list(spec.get("DependsOn", [])))) & set(resources)
        for name, spec in resources.items()
    }
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name) :] + [name]
            pytest.fail("circular dependency: " + " -> ".join(cycle))
        if name in done:
            return
        for dependency in sorted(edges[name]):
            visit(dependency, [*path, name])
        done.add(name)

    for name in sorted(resources):
        visit(name, [])
