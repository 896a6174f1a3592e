"""A moto server on 127.0.0.1 (free port) for the whole integration run, reset before every test.

The code under test reaches it over HTTP through AWS_ENDPOINT_URL only, exactly as it
would reach AWS; resources come from template.yaml.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from reengage.settings import Settings
from reengage_cli import emulator


@dataclass
class Emulator:
    endpoint: str
    environment: dict[str, str]
    settings: Settings

    def outbox(self) -> list[emulator.CapturedEmail]:
        return emulator.outbox(self.endpoint)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = emulator.LocalEmulator()
    endpoint = server.start()
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def aws(moto_endpoint: str, restore_environ: None) -> Emulator:
    """A fresh, provisioned emulator; the process environment points at it for this test."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - loopback
    os.environ["AWS_ENDPOINT_URL"] = moto_endpoint
    provisioned = emulator.provision()
    os.environ.update(provisioned.environment)
    return Emulator(moto_endpoint, provisioned.environment, Settings.from_env(os.environ))
