"""Creating template.yaml's stateful resources on the emulator (or only looking them up).

Tables (with indexes, point-in-time recovery, TTL, streams), queues (with redrive),
secrets, buckets, SES identities and configuration sets are built from their template
properties, and one IAM role per function as SAM deploys it (iam.py: the emulator enforces
it); the rest (functions, schedules, log groups) has no local counterpart.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from reengage_cli.emulator import iam
from reengage_cli.emulator.server import DEFAULT_REGION, LOCAL_UNSUBSCRIBE_PATH, endpoint_override
from reengage_cli.emulator.template import Resolver, TemplateError, json_parameter, load_template

LOCAL_STACK = "reengage-local"
# Functions' variables that describe the deployment, not the emulator.
_SKIPPED_VARIABLES = {"AWS_ENDPOINT_URL"}


def find_template() -> Path:
    """template.yaml: $REENGAGE_TEMPLATE, the current folder, or the checkout this package runs from."""
    candidates = [
        Path(os.environ["REENGAGE_TEMPLATE"]) if os.environ.get("REENGAGE_TEMPLATE") else None,
        Path.cwd() / "template.yaml",
        Path(__file__).resolve().parents[3] / "template.yaml",
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return candidate
    raise TemplateError("template.yaml not found: run from the reengage checkout or set REENGAGE_TEMPLATE")


def _physical_name(logical_id: str) -> str:
    return f"{LOCAL_STACK}-{logical_id}"


def _create_table(client: Any, name: str, props: dict[str, Any]) -> None:
    try:
        client.describe_table(TableName=name)
        return
    except client.exceptions.ResourceNotFoundException:
        pass
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if "GlobalSecondaryIndexes" in props:
        request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if "SSESpecification" in props:
        request["SSESpecification"] = {"Enabled": bool(props["SSESpecification"].get("SSEEnabled"))}
    if "StreamSpecification" in props:
        request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    if "DeletionProtectionEnabled" in props:
        request["DeletionProtectionEnabled"] = str(props["DeletionProtectionEnabled"]).lower() == "true"
    client.create_table(**request)
    pitr = props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")
    if str(pitr).lower() == "true":
        client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    if "TimeToLiveSpecification" in props:
        client.update_time_to_live(TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"])


def _create_queue(client: Any, name: str, props: dict[str, Any]) -> tuple[str, str]:
    attributes: dict[str, str] = {}
    for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
        if key in props:
            attributes[key] = str(props[key])
    for key in ("SqsManagedSseEnabled", "FifoQueue", "ContentBasedDeduplication"):
        if key in props:
            attributes[key] = str(props[key]).lower()
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json_parameter(props["RedrivePolicy"])
    if str(props.get("FifoQueue", "")).lower() == "true":
        name += ".fifo"
    url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _verify_identity(client: Any, identity: str) -> None:
    if "@" in identity:
        client.verify_email_identity(EmailAddress=identity)
    else:
        client.verify_domain_identity(Domain=identity)


@dataclass
class Provisioned:
    resources: dict[str, str]  # logical id -> physical id
    environment: dict[str, str]  # the functions' environment variables
    # function logical id -> credentials of its role (AccessKeyId, SecretAccessKey, SessionToken)
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)


class _Provisioner:
    """Creates (or only looks up) one stateful resource at a time, recording its Ref and attributes."""

    def __init__(self, resolver: Resolver, region: str, create: bool) -> None:
        self.resolver = resolver
        self.region = region
        self.create = create
        self.dynamodb: Any = boto3.client("dynamodb", region_name=region)
        self.sqs: Any = boto3.client("sqs", region_name=region)
        self.ses: Any = boto3.client("ses", region_name=region)
        self.secrets: Any = boto3.client("secretsmanager", region_name=region)

    def table(self, logical: str, props: dict[str, Any]) -> None:
        name = props.get("TableName") or _physical_name(logical)
        if self.create:
            _create_table(self.dynamodb, name, props)
        self.resolver.refs[logical] = name
        self.resolver.attributes[(logical, "Arn")] = f"arn:aws:dynamodb:{self.region}:123456789012:table/{name}"

    def queue(self, logical: str, props: dict[str, Any]) -> None:
        name = props.get("QueueName") or _physical_name(logical)
        if self.create:
            url, arn = _create_queue(self.sqs, name, props)
        else:
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            arn = f"arn:aws:sqs:{self.region}:123456789012:{name}"
        self.resolver.refs[logical] = url
        self.resolver.attributes[(logical, "Arn")] = arn
        self.resolver.attributes[(logical, "QueueName")] = name

    def secret(self, logical: str, props: dict[str, Any]) -> None:
        name = props.get("Name") or _physical_name(logical)
        try:
            arn = self.secrets.describe_secret(SecretId=name)["ARN"]
        except self.secrets.exceptions.ResourceNotFoundException:
            if not self.create:
                raise
            arn = self.secrets.create_secret(Name=name, SecretString=secrets.token_urlsafe(48))["ARN"]
        self.resolver.refs[logical] = arn

    def configuration_set(self, logical: str, props: dict[str, Any]) -> None:
        name = props.get("Name") or _physical_name(logical)
        if self.create:
            try:
                self.ses.create_configuration_set(ConfigurationSet={"Name": name})
            except self.ses.exceptions.ConfigurationSetAlreadyExistsException:
                pass
        self.resolver.refs[logical] = name

    def bucket(self, logical: str, props: dict[str, Any]) -> None:
        name = props.get("BucketName") or _physical_name(logical).lower()
        if self.create:
            s3: Any = boto3.client("s3", region_name=self.region)
            try:
                s3.create_bucket(Bucket=name)
            except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
                pass
        self.resolver.refs[logical] = name
        self.resolver.attributes[(logical, "Arn")] = f"arn:aws:s3:::{name}"

    def event_bus(self, logical: str, props: dict[str, Any]) -> None:
        name = props.get("Name") or _physical_name(logical)
        if self.create:
            events: Any = boto3.client("events", region_name=self.region)
            try:
                events.create_event_bus(Name=name)
            except events.exceptions.ResourceAlreadyExistsException:
                pass
        self.resolver.refs[logical] = name
        self.resolver.attributes[(logical, "Arn")] = f"arn:aws:events:{self.region}:123456789012:event-bus/{name}"

    def identity(self, logical: str, props: dict[str, Any]) -> None:
        if self.create:
            _verify_identity(self.ses, props["EmailIdentity"])
        self.resolver.refs[logical] = props["EmailIdentity"]


def provision(
    overrides: Mapping[str, str] | None = None, region: str = DEFAULT_REGION, create: bool = True
) -> Provisioned:
    """Create (or, with create=False, only look up) the template's stateful resources on the current endpoint.

    Tables (with indexes, point-in-time recovery, TTL), queues (with redrive) and SES
    identities are built from their template properties; the rest (functions, schedules,
    log groups) has no local counterpart. Idempotent.
    """
    path = find_template()
    template = load_template(path)
    resolver = Resolver.for_template(template, overrides or {}, region)
    provisioner = _Provisioner(resolver, region, create)
    builders = {
        "AWS::DynamoDB::Table": provisioner.table,
        "AWS::SQS::Queue": provisioner.queue,
        "AWS::SES::EmailIdentity": provisioner.identity,
        "AWS::SecretsManager::Secret": provisioner.secret,
        "AWS::SES::ConfigurationSet": provisioner.configuration_set,
        "AWS::S3::Bucket": provisioner.bucket,
        "AWS::Events::EventBus": provisioner.event_bus,
    }
    pending = {
        logical: spec
        for logical, spec in template["Resources"].items()
        if spec.get("Type") in builders and ("Condition" not in spec or resolver.condition(spec["Condition"]))
    }
    while pending:
        progressed = False
        for logical, spec in list(pending.items()):
            try:
                props = resolver.resolve(spec.get("Properties", {}))
            except TemplateError:
                continue  # depends on a resource not created yet
            builders[spec["Type"]](logical, props)
            del pending[logical]
            progressed = True
        if not progressed:
            raise TemplateError(f"cannot resolve the properties of {', '.join(sorted(pending))}")
    environment = _function_environment(template, resolver)
    endpoint = endpoint_override(os.environ)
    if endpoint:
        # The Function URL has no local counterpart in moto: the emulator serves it itself.
        environment["UNSUBSCRIBE_URL"] = endpoint + LOCAL_UNSUBSCRIBE_PATH
    credentials: dict[str, dict[str, str]] = {}
    if create:
        # One role per function, as deployed; calls signed with its credentials are authorized.
        roles = iam.function_roles(path, resolver, region, LOCAL_STACK)
        credentials = iam.create_roles(
            boto3.client("iam", region_name=region), boto3.client("sts", region_name=region), roles
        )
        iam.register(credentials)
    return Provisioned(dict(resolver.refs), environment, credentials)


def _function_environment(template: dict[str, Any], resolver: Resolver) -> dict[str, str]:
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    environment: dict[str, str] = {}
    for name, value in variables.items():
        if name in _SKIPPED_VARIABLES:
            continue
        try:
            environment[name] = str(resolver.resolve(value))
        except TemplateError:
            continue  # refers to something with no local counterpart
    return environment


def function_credentials(function: str, region: str = DEFAULT_REGION) -> dict[str, str] | None:
    """The credentials `function` (a logical id) runs with on the emulator the environment points at.

    Those this process provisioned, else a session of the role `reengage local` or `reengage
    bootstrap` created there; None against AWS (the CLI then acts as the operator).
    """
    known = iam.registered(function)
    if known is not None or not endpoint_override(os.environ):
        return known
    iam_client: Any = boto3.client("iam", region_name=region)
    try:
        arn = iam_client.get_role(RoleName=f"{LOCAL_STACK}-{function}")["Role"]["Arn"]
    except iam_client.exceptions.NoSuchEntityException:
        raise TemplateError(f"the emulator has no role for {function}: run `reengage bootstrap`") from None
    issued = boto3.client("sts", region_name=region).assume_role(RoleArn=arn, RoleSessionName=function)
    credentials = issued["Credentials"]
    return {key: credentials[key] for key in ("AccessKeyId", "SecretAccessKey", "SessionToken")}
