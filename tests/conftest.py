"""Shared fixtures. AWS credentials are dummies set before any client exists; no test reaches AWS."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from reengage.settings import Settings
from reengage_cli.emulator import iam, provision
from reengage_cli.emulator.outbox import CapturedEmail, outbox
from reengage_cli.emulator.server import LocalEmulator
from reengage_cli.emulator.template import load_template
from tests.openai_stub import OpenAIStub

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
)
os.environ.pop("AWS_PROFILE", None)
for _name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]:
    del os.environ[_name]
# Before any client exists: handlers invoked under the `aws` fixture sign with their role's credentials.
iam.install_credential_switch()


def load_event(name: str) -> dict[str, Any]:
    """The same files `sam local invoke -e events/NAME.json` uses."""
    return dict(json.loads((EVENTS / f"{name}.json").read_text()))


def ago(days: float = 0, hours: float = 0, now: datetime = NOW) -> str:
    return (now - timedelta(days=days, hours=hours)).isoformat().replace("+00:00", "Z")


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_handler(function: str) -> ModuleType:
    """A fresh copy of functions/<function>/app.py, the module Lambda loads (settings read now).

    Under the `aws` fixture, `lambda_handler` runs with the credentials of the function's own
    role (built from template.yaml), and the emulator refuses what that role does not allow.
    """
    path = ROOT / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"handler_{function}_{id(path)}_{len(sys.modules)}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through sys.modules
    spec.loader.exec_module(module)
    handler = vars(module)["lambda_handler"]

    def lambda_handler_as_its_role(event: Any, context: Any) -> Any:
        credentials = iam.registered(iam.function_for_code(TEMPLATE, function)) if ROLES_ACTIVE else None
        with iam.acting_as(credentials):
            return handler(event, context)

    vars(module)["lambda_handler"] = lambda_handler_as_its_role
    return module


TEMPLATE = load_template(ROOT / "template.yaml")
ROLES_ACTIVE = False  # set while the `aws` fixture's emulator holds the functions' roles


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def restore_environ() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@dataclass
class Emulator:
    endpoint: str
    environment: dict[str, str]
    settings: Settings

    def outbox(self) -> list[CapturedEmail]:
        return outbox(self.endpoint)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = LocalEmulator()
    endpoint = server.start()
    try:
        yield endpoint
    finally:
        server.stop()


# Tests run at any hour and seed every lead at example.com: send windows and the company-wide pause
# are off unless a test asks for them (tests/integration/test_send_windows.py provisions the defaults).
# Sends are not spread either (real-time SQS delays would only slow the suites down; one test spreads).
TIMELESS = {"SendWindow": "always", "CompanyPauseDays": "0", "SesMaxSendRate": "1000"}


@contextmanager
def provisioned_emulator(moto_endpoint: str, overrides: dict[str, str]) -> Iterator[Emulator]:
    """A fresh emulator provisioned with these parameter overrides; the process environment points at it.

    Handlers run as their roles; any request the emulator refused fails the test at the end,
    even if the code swallowed the error.
    """
    global ROLES_ACTIVE
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - loopback
    os.environ["AWS_ENDPOINT_URL"] = moto_endpoint
    provisioned = provision.provision(overrides)
    os.environ.update(provisioned.environment)
    ROLES_ACTIVE = True
    try:
        yield Emulator(moto_endpoint, provisioned.environment, Settings.from_env(os.environ))
    finally:
        ROLES_ACTIVE = False
        iam.register({})
    refused = iam.denials()
    assert not refused, "the emulator refused calls the template does not allow:\n" + "\n".join(refused)


@pytest.fixture
def aws(moto_endpoint: str, restore_environ: None) -> Iterator[Emulator]:
    """A fresh, provisioned emulator (send windows and the company pause off); see provisioned_emulator."""
    with provisioned_emulator(moto_endpoint, TIMELESS) as emulator:
        yield emulator


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStub]:
    """A local OpenAI-compatible server on 127.0.0.1 (free port), stopped after the test."""
    stub = OpenAIStub()
    stub.start()
    try:
        yield stub
    finally:
        stub.stop()
