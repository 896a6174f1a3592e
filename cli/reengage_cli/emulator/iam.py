"""Each function's IAM role as `sam deploy` creates it, on the emulator, and enforced there.

Roles: the template goes through samtranslator (what SAM runs at deploy time), so inline
statements, SAM policy templates and the policies SAM adds itself (event-source and
destination permissions) all land in the role, resolved against the emulator's resources.
The AWS managed policies SAM attaches are added as their published statements.

Enforcement: a request signed with credentials the emulator's STS issued (`ASIA...`) is
authorized against the role behind them before moto sees it: the IAM action and resource
ARN(s) are derived from the request the way the service's authorization reference lists
them (a DynamoDB transaction needs `PutItem`/`UpdateItem`/`ConditionCheckItem` on each table;
a query on an index is authorized on the index ARN; SES authorizes the identity and the
configuration set) and evaluated by moto's IAM policy engine (Allow, explicit Deny,
wildcards, `StringEquals` conditions on `ses:FromAddress`). Other requests (the operator,
the tests' own set-up and checks, signed with the dummy keys) are the account's administrator.
moto's built-in switch (`INITIAL_NO_AUTH_ACTION_COUNT`) is not used: it authorizes every
DynamoDB, SES and Secrets Manager call against the resource `*` and under the API name
(`TransactWriteItems`), so any resource-scoped grant would be refused.

Not evaluated (see README "IAM, enforced locally"): resource policies (KMS key policies, SNS
topic policies, bucket policies), permission boundaries, SCPs, condition operators other than
`StringEquals`. tests/infra/test_deploy_readiness.py checks those parts of the template.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import botocore.credentials

from reengage_cli.emulator.template import Resolver, TemplateError, load_template

ACCOUNT = "123456789012"
_ENFORCED_KEY_PREFIX = "ASIA"  # temporary credentials: only the emulator's STS issues them here

# What the AWS managed policies SAM attaches to function roles allow (as published by AWS).
_LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
MANAGED_POLICIES: dict[str, list[str]] = {
    "service-role/AWSLambdaBasicExecutionRole": _LOGS,
    "AWSXrayWriteOnlyAccess": [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    ],
    "service-role/AWSLambdaSQSQueueExecutionRole": [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        *_LOGS,
    ],
    "service-role/AWSLambdaDynamoDBExecutionRole": [
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        *_LOGS,
    ],
}


# --- Roles from the template ---------------------------------------------------------------------


def _for_translator(template: dict[str, Any]) -> dict[str, Any]:
    """The template as `sam package` hands it on: code locations are S3 objects."""
    document: dict[str, Any] = json.loads(json.dumps(template))
    for spec in document["Resources"].values():
        if spec.get("Type") == "AWS::Serverless::Function":
            spec["Properties"]["CodeUri"] = "s3://reengage-local/code.zip"
        elif spec.get("Type") == "AWS::Serverless::LayerVersion":
            spec["Properties"]["ContentUri"] = "s3://reengage-local/layer.zip"
    return document


@cache
def _translated(path: Path, mtime: float, region: str) -> dict[str, Any]:
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    try:
        result: dict[str, Any] = translator.translate(
            _for_translator(load_template(path)), parameter_values={}, get_managed_policy_map=lambda: {}
        )
    except Exception as error:  # noqa: BLE001 - samtranslator raises its own types for every template problem
        raise TemplateError(f"{path}: SAM cannot transform the template: {error}") from error
    return result


@dataclass(frozen=True)
class FunctionRole:
    function: str  # the function's logical id
    role_name: str
    policies: dict[str, dict[str, Any]]  # policy name -> resolved document


def function_roles(path: Path, resolver: Resolver, region: str, role_prefix: str) -> list[FunctionRole]:
    """One role per function the stack would create, with its policies resolved against `resolver`."""
    translated = _translated(path, path.stat().st_mtime, region)
    resources = translated["Resources"]
    roles = []
    for logical, spec in resources.items():
        if spec["Type"] != "AWS::Lambda::Function" or "Condition" in spec and not resolver.condition(spec["Condition"]):
            continue
        role_id = spec["Properties"]["Role"]["Fn::GetAtt"][0]
        role = resources[role_id]["Properties"]
        policies: dict[str, dict[str, Any]] = {}
        for policy in role.get("Policies", []):
            try:
                document = resolver.resolve(policy["PolicyDocument"])
            except TemplateError as error:
                raise TemplateError(f"{logical}: {policy['PolicyName']}: {error}") from error
            document["Statement"] = [statement for statement in document["Statement"] if statement]
            # IAM reads a policy without a version as 2008-10-17 (no policy variables); moto
            # refuses it. The template uses no policy variables, so the two read the same.
            document.setdefault("Version", "2012-10-17")
            policies[policy["PolicyName"]] = document
        for arn in role.get("ManagedPolicyArns", []):
            name = str(arn).split(":policy/", 1)[-1]
            if name not in MANAGED_POLICIES:
                raise TemplateError(f"{logical}: the emulator does not know the managed policy {arn}")
            statement = {"Effect": "Allow", "Action": MANAGED_POLICIES[name], "Resource": "*"}
            policies[name.rsplit("/", 1)[-1]] = {"Version": "2012-10-17", "Statement": [statement]}
        roles.append(FunctionRole(logical, f"{role_prefix}-{logical}"[:64], policies))
    return roles


def create_roles(iam: Any, sts: Any, roles: list[FunctionRole]) -> dict[str, dict[str, str]]:
    """Creates (or replaces the policies of) each role and returns credentials for it, by function."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    credentials = {}
    for role in roles:
        try:
            arn = iam.create_role(RoleName=role.role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        except iam.exceptions.EntityAlreadyExistsException:
            arn = iam.get_role(RoleName=role.role_name)["Role"]["Arn"]
            for name in iam.list_role_policies(RoleName=role.role_name)["PolicyNames"]:
                iam.delete_role_policy(RoleName=role.role_name, PolicyName=name)
        for name, document in role.policies.items():
            iam.put_role_policy(RoleName=role.role_name, PolicyName=name, PolicyDocument=json.dumps(document))
        issued = sts.assume_role(RoleArn=arn, RoleSessionName=role.function[:64])["Credentials"]
        credentials[role.function] = {
            "AccessKeyId": issued["AccessKeyId"],
            "SecretAccessKey": issued["SecretAccessKey"],
            "SessionToken": issued["SessionToken"],
        }
    return credentials


def function_for_code(template: dict[str, Any], folder: str) -> str:
    """The logical id of the function whose code is functions/<folder>/."""
    for logical, spec in template["Resources"].items():
        if spec.get("Type") == "AWS::Serverless::Function":
            if str(spec["Properties"].get("CodeUri", "")).rstrip("/").endswith(f"functions/{folder}"):
                return str(logical)
    raise TemplateError(f"no function in the template has its code in functions/{folder}/")


_REGISTERED: dict[str, dict[str, str]] = {}


def register(credentials: dict[str, dict[str, str]]) -> None:
    """Remembers the functions' credentials in this process (the emulator serves the unsubscribe URL)."""
    _REGISTERED.clear()
    _REGISTERED.update(credentials)


def registered(function: str) -> dict[str, str] | None:
    return _REGISTERED.get(function)


# --- Calling as a function ------------------------------------------------------------------------

_acting = threading.local()
_install_lock = threading.Lock()
_installed = False


class _SwitchableCredentials(botocore.credentials.Credentials):
    """Environment credentials, except in a thread acting as a function: then that function's."""

    def __init__(self, base: botocore.credentials.Credentials) -> None:
        self._base = base
        self.method = base.method

    def get_frozen_credentials(self) -> botocore.credentials.ReadOnlyCredentials:
        role: botocore.credentials.ReadOnlyCredentials | None = getattr(_acting, "credentials", None)
        return role if role is not None else self._base.get_frozen_credentials()

    @property
    def access_key(self) -> str:  # type: ignore[override]
        return str(self.get_frozen_credentials().access_key)

    @property
    def secret_key(self) -> str:  # type: ignore[override]
        return str(self.get_frozen_credentials().secret_key)

    @property
    def token(self) -> str | None:  # type: ignore[override]
        return self.get_frozen_credentials().token


def install_credential_switch() -> None:
    """Lets `acting_as` change the credentials every botocore client of this process signs with.

    Clients resolve credentials once, when built, and handlers share them with the test code
    (pynamodb's models are process-wide). Environment credentials are therefore wrapped so that
    each request is signed with the credentials of the function the current thread is acting
    as, else with the environment's. Install before any client is built.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        original = botocore.credentials.EnvProvider.load

        def load(self: Any) -> Any:
            base = original(self)
            return None if base is None else _SwitchableCredentials(base)

        botocore.credentials.EnvProvider.load = load  # type: ignore[method-assign]
        _threads_act_as_their_submitter()
        _installed = True


def _threads_act_as_their_submitter() -> None:
    """Work a function hands to a thread pool (the scheduler's claim threads) runs as that function,
    as it does in Lambda, where every thread of the process has the function's role."""
    original = concurrent.futures.ThreadPoolExecutor.submit

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        credentials = getattr(_acting, "credentials", None)
        if credentials is None:
            return original(self, fn, *args, **kwargs)

        def as_submitter(*inner_args: Any, **inner_kwargs: Any) -> Any:
            previous = getattr(_acting, "credentials", None)
            _acting.credentials = credentials
            try:
                return fn(*inner_args, **inner_kwargs)
            finally:
                _acting.credentials = previous

        return original(self, as_submitter, *args, **kwargs)

    concurrent.futures.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]


@contextmanager
def acting_as(credentials: dict[str, str] | None) -> Iterator[None]:
    """Every AWS call of this thread inside the block is signed with `credentials` (a function's role);
    None: with the environment's (the operator's), even inside another `acting_as`."""
    previous = getattr(_acting, "credentials", None)
    _acting.credentials = (
        None
        if credentials is None
        else botocore.credentials.ReadOnlyCredentials(
            credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
        )
    )
    try:
        yield
    finally:
        _acting.credentials = previous


# --- Authorizing a request ------------------------------------------------------------------------

_DENIALS: list[str] = []
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


def denials() -> list[str]:
    """Every request refused since the last reset (a refusal the code swallowed still shows here)."""
    return list(_DENIALS)


def reset_denials() -> None:
    _DENIALS.clear()


@dataclass
class _Request:
    service: str
    region: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body.decode("utf-8", "replace")).items()}

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{ACCOUNT}:{resource}"


def _operation(request: _Request) -> tuple[str, dict[str, Any]]:
    target = request.headers.get("x-amz-target", "")
    if target:
        return target.rsplit(".", 1)[-1], request.json()
    form = request.form() if request.method == "POST" else {key: values[0] for key, values in request.query.items()}
    return form.get("Action", ""), form


def _dynamodb(request: _Request) -> list[tuple[str, str, dict[str, str]]]:
    operation, params = _operation(request)

    def table(name: str) -> str:
        return request.arn("dynamodb", f"table/{name}")

    if operation == "TransactWriteItems":
        kinds = {
            "Put": "PutItem",
            "Update": "UpdateItem",
            "Delete": "DeleteItem",
            "ConditionCheck": "ConditionCheckItem",
        }
        return [
            (f"dynamodb:{kinds[kind]}", table(body["TableName"]), {})
            for item in params.get("TransactItems", [])
            for kind, body in item.items()
        ]
    if operation == "TransactGetItems":
        return [("dynamodb:GetItem", table(item["Get"]["TableName"]), {}) for item in params.get("TransactItems", [])]
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [(f"dynamodb:{operation}", table(name), {}) for name in params.get("RequestItems", {})]
    if "StreamArn" in params:
        return [(f"dynamodb:{operation}", str(params["StreamArn"]), {})]
    if "TableName" in params:
        resource = table(params["TableName"])
        if params.get("IndexName"):
            resource += f"/index/{params['IndexName']}"
        return [(f"dynamodb:{operation}", resource, {})]
    return [(f"dynamodb:{operation}", "*", {})]


def _sqs(request: _Request) -> list[tuple[str, str, dict[str, str]]]:
    operation, params = _operation(request)
    action = {
        "SendMessageBatch": "SendMessage",
        "DeleteMessageBatch": "DeleteMessage",
        "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    }.get(operation, operation)
    name = str(params.get("QueueUrl", "")).rstrip("/").rsplit("/", 1)[-1] or str(params.get("QueueName", ""))
    return [(f"sqs:{action}", request.arn("sqs", name) if name else "*", {})]


def _secretsmanager(request: _Request) -> list[tuple[str, str, dict[str, str]]]:
    operation, params = _operation(request)
    secret = str(params.get("SecretId", ""))
    if secret and not secret.startswith("arn:"):
        from moto.secretsmanager.models import secretsmanager_backends

        try:
            secret = secretsmanager_backends[ACCOUNT][request.region].describe_secret(secret).arn
        except Exception:  # noqa: BLE001 - an unknown secret: authorize its would-be ARN, moto then says it is missing
            secret = request.arn("secretsmanager", f"secret:{secret}")
    return [(f"secretsmanager:{operation}", secret or "*", {})]


def _ssm(request: _Request) -> list[tuple[str, str, dict[str, str]]]:
    operation, params = _operation(request)
    names = [params["Name"]] if "Name" in params else list(params.get("Names", []))
    return [(f"ssm:{operation}", request.arn("ssm", f"parameter/{str(name).lstrip('/')}"), {}) for name in names] or [
        (f"ssm:{operation}", "*", {})
    ]


def _ses(request: _Request) -> list[tuple[str, str, dict[str, str]]]:
    if request.path.startswith("/v2/email/outbound-emails") and request.method == "POST":
        params = request.json()
        sender = str(params.get("FromEmailAddress", ""))
        address = sender.rsplit("<", 1)[-1].rstrip(">").strip()
        from moto.ses.models import ses_backends

        verified = ses_backends[ACCOUNT][request.region].email_identities
        identity = address if address in verified else address.rsplit("@", 1)[-1]
        condition = {"ses:FromAddress": address}
        checks = [("ses:SendEmail", request.arn("ses", f"identity/{identity}"), condition)]
        if params.get("ConfigurationSetName"):
            resource = request.arn("ses", f"configuration-set/{params['ConfigurationSetName']}")
            checks.append(("ses:SendEmail", resource, condition))
        return checks
    if request.path.startswith("/v2/"):
        return [("ses:<unmapped sesv2 request>", "*", {})]
    operation, _ = _operation(request)
    return [(f"ses:{operation}", "*", {})]


def _s3(request: _Request) -> list[tuple[str, str, dict[str, str]]]:
    bucket, _, key = unquote(request.path.lstrip("/")).partition("/")
    if not key:
        action = {"GET": "ListBucket", "HEAD": "ListBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}
        return [(f"s3:{action.get(request.method, request.method)}", f"arn:aws:s3:::{bucket}", {})]
    action = {"GET": "GetObject", "HEAD": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject"}
    return [(f"s3:{action.get(request.method, request.method)}", f"arn:aws:s3:::{bucket}/{key}", {})]


def _events(request: _Request) -> list[tuple[str, str, dict[str, str]]]:
    operation, params = _operation(request)
    if operation != "PutEvents":
        return [(f"events:{operation}", "*", {})]
    buses = {str(entry.get("EventBusName") or "default") for entry in params.get("Entries", [])}
    return [
        ("events:PutEvents", bus if bus.startswith("arn:") else request.arn("events", f"event-bus/{bus}"), {})
        for bus in sorted(buses)
    ]


_SERVICES = {
    "dynamodb": _dynamodb,
    "sqs": _sqs,
    "secretsmanager": _secretsmanager,
    "ssm": _ssm,
    "ses": _ses,
    "s3": _s3,
    "events": _events,
}


def _denial(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(service, message) when the request's role does not allow it, else None."""
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not match or not match.group(1).startswith(_ENFORCED_KEY_PREFIX):
        return None  # the account's administrator
    access_key, region, service = match.groups()
    from moto.iam.access_control import AssumedRoleAccessKey, IAMPolicy, PermissionResult

    try:
        principal = AssumedRoleAccessKey(
            ACCOUNT, "aws", access_key, {"X-Amz-Security-Token": environ.get("HTTP_X_AMZ_SECURITY_TOKEN", "")}
        )
    except Exception:  # noqa: BLE001 - unknown key or token
        return service, f"the security token {access_key} is not valid"
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    request = _Request(
        service,
        region,
        environ["REQUEST_METHOD"].upper(),
        environ.get("PATH_INFO", ""),
        parse_qs(environ.get("QUERY_STRING", "")),
        headers,
        body,
    )
    mapper = _SERVICES.get(service)
    checks: list[tuple[str, str, dict[str, str]]] = (
        mapper(request) if mapper else [(f"{service}:<unmapped request>", "*", {})]
    )
    policies = [IAMPolicy(policy) for policy in principal.collect_policies()]
    for action, resource, conditions in checks:
        results = [policy.is_action_permitted(action, resource, None, conditions) for policy in policies]
        if PermissionResult.DENIED in results or PermissionResult.PERMITTED not in results:
            return service, f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource}"
    return None


def _refusal(service: str, message: str, start_response: Any) -> list[bytes]:
    if service in ("s3",):
        body = f"<Error><Code>AccessDenied</Code><Message>{message}</Message></Error>"
        start_response("403 Forbidden", [("Content-Type", "application/xml")])
        return [body.encode()]
    status = "400 Bad Request" if service == "dynamodb" else "403 Forbidden"
    payload = json.dumps({"__type": "AccessDeniedException", "message": message, "Message": message})
    start_response(
        status, [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-ErrorType", "AccessDeniedException")]
    )
    return [payload.encode()]


def authorize(environ: dict[str, Any], start_response: Any) -> list[bytes] | None:
    """A refusal to send back when the request's role does not allow it, else None (go on)."""
    denial = _denial(environ)
    if denial is None:
        return None
    service, message = denial
    _DENIALS.append(message)
    return _refusal(service, message, start_response)
