"""The embedded default: moto in server mode on loopback, provisioned from template.yaml.

Nothing in the application knows it talks to an emulator: the CLI sets the standard
AWS_ENDPOINT_URL variable and every boto3/pynamodb client follows it.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import os
import secrets
import threading
import urllib.request
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from reengage_cli import moto_transactions
from reengage_cli.cfn import Resolver, TemplateError, json_parameter, load_template

LOCAL_STACK = "reengage-local"
DEFAULT_REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Functions' variables that describe the deployment, not the emulator.
_SKIPPED_VARIABLES = {"AWS_ENDPOINT_URL"}


def find_template() -> Path:
    """template.yaml: $REENGAGE_TEMPLATE, the current folder, or the checkout this package runs from."""
    candidates = [
        Path(os.environ["REENGAGE_TEMPLATE"]) if os.environ.get("REENGAGE_TEMPLATE") else None,
        Path.cwd() / "template.yaml",
        Path(__file__).resolve().parents[2] / "template.yaml",
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return candidate
    raise TemplateError("template.yaml not found: run from the reengage checkout or set REENGAGE_TEMPLATE")


def endpoint_override(env: Mapping[str, str]) -> str | None:
    return env.get("AWS_ENDPOINT_URL") or None


LOCAL_UNSUBSCRIBE_PATH = "/reengage/unsubscribe"


def _local_unsubscribe(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The UnsubscribeFunction's Function URL, served by the emulator on its own port."""
    from urllib.parse import parse_qsl

    from reengage.aws import lead_store, secret_text
    from reengage.clock import utc_now
    from reengage.settings import Settings
    from reengage.unsubscribe import handle_request

    settings = Settings.from_env(os.environ)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length).decode("utf-8", errors="replace") if length else ""
    page = handle_request(
        environ["REQUEST_METHOD"].upper(),
        dict(parse_qsl(environ.get("QUERY_STRING", ""))),
        body,
        secret_text(settings.unsubscribe_key_secret, "key").encode(),
        lead_store(settings),
        utc_now(),
        settings.max_followups,
    )
    start_response(f"{page.status} {'OK' if page.status == 200 else 'Error'}", [("Content-Type", page.content_type)])
    return [page.body.encode()]


class _Serialized:
    """Runs one request at a time. DynamoDB applies a conditional write atomically; moto's
    backends check and write without a lock, so concurrent requests could both pass a
    condition. Serializing gives the emulator DynamoDB's guarantee. The local stand-in for
    the unsubscribe Function URL runs outside the lock (it calls the emulator itself)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("PATH_INFO", "").startswith(LOCAL_UNSUBSCRIBE_PATH):
            return _local_unsubscribe(environ, start_response)
        with self.lock:
            return [b"".join(self.app(environ, start_response))]


class LocalEmulator:
    """moto's server on 127.0.0.1 (a free port unless one is given), stopped by whoever started it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines
        self.host = host
        self.port = port
        self.endpoint = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        moto_transactions.install()
        app = _Serialized(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self.host, self.port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.endpoint = f"http://{host}:{port}"
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> LocalEmulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def use_endpoint(endpoint: str, env: MutableMapping[str, str]) -> None:
    """Point every AWS client of this process at `endpoint`, with dummy credentials if none are set."""
    env["AWS_ENDPOINT_URL"] = endpoint
    for name, value in DUMMY_CREDENTIALS.items():
        env.setdefault(name, value)
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", DEFAULT_REGION))


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
    template = load_template(find_template())
    resolver = Resolver.for_template(template, overrides or {}, region)
    provisioner = _Provisioner(resolver, region, create)
    builders = {
        "AWS::DynamoDB::Table": provisioner.table,
        "AWS::SQS::Queue": provisioner.queue,
        "AWS::SES::EmailIdentity": provisioner.identity,
        "AWS::SecretsManager::Secret": provisioner.secret,
        "AWS::SES::ConfigurationSet": provisioner.configuration_set,
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
    return Provisioned(dict(resolver.refs), environment)


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


def dead_letter_queue_url(queue_url: str) -> str | None:
    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])["Attributes"]
    if "RedrivePolicy" not in attributes:
        return None
    arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
    account, name = arn.split(":")[4], arn.split(":")[5]
    try:
        return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])
    except ClientError:
        return None


@dataclass(frozen=True)
class CapturedEmail:
    sender: str
    to: str
    subject: str
    text: str
    html: str
    headers: dict[str, str]


def _parts(message: Message) -> tuple[str, str]:
    text = html = ""
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        content = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
        if part.get_content_type() == "text/plain" and not text:
            text = content
        elif part.get_content_type() == "text/html" and not html:
            html = content
    return text, html


def outbox(endpoint: str) -> list[CapturedEmail]:
    """The emails the emulator accepted, oldest first (moto's /moto-api/data.json)."""
    # Generous timeout: the dump holds every backend's state, large after a load test.
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=600) as response:  # noqa: S310 - loopback
        data = json.load(response)
    captured: list[CapturedEmail] = []
    for raw in data.get("ses", {}).get("RawMessage", []):
        message = email.message_from_string(raw["raw_data"], policy=email.policy.default)
        text, html = _parts(message)
        captured.append(
            CapturedEmail(
                sender=str(message.get("From", "")),
                to=str(message.get("To", "")),
                subject=str(message.get("Subject", "")),
                text=text,
                html=html,
                headers={key: str(value) for key, value in message.items()},
            )
        )
    for simple in data.get("ses", {}).get("Message", []):
        captured.append(
            CapturedEmail(
                sender=simple.get("source", ""),
                to=", ".join(simple.get("destinations", {}).get("ToAddresses", [])),
                subject=simple.get("subject", ""),
                text=simple.get("body", ""),
                html="",
                headers={},
            )
        )
    return captured
