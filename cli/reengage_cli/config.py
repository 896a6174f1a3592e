"""The CLI's configuration: settings from the environment, completed from the emulator when local."""

from __future__ import annotations

import os
from collections.abc import Sequence

from botocore.exceptions import ClientError

from reengage.settings import Settings
from reengage_cli.emulator import provision
from reengage_cli.emulator.server import endpoint_override


class CliError(Exception):
    """A problem the user can fix; printed as one line."""


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Settings from the environment; against an emulator, missing names come from the template."""
    env = dict(os.environ) if env is None else env
    merged = dict(env)
    if endpoint_override(env) and not (env.get("LEADS_TABLE_NAME") and env.get("QUEUE_URL")):
        try:
            provisioned = provision.provision(create=False)
        except ClientError as error:
            raise CliError(
                f"the emulator at {env['AWS_ENDPOINT_URL']} has no reengage resources; run `reengage bootstrap` first"
            ) from error
        for name, value in provisioned.environment.items():
            merged.setdefault(name, value)
    return Settings.from_env(merged)


def parameter_overrides(pairs: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise CliError(f"--parameter {pair!r}: expected NAME=VALUE")
        overrides[name] = value
    return overrides


def require_endpoint(command: str) -> str:
    endpoint = endpoint_override(os.environ)
    if not endpoint:
        raise CliError(
            f"`reengage {command}` only works against an emulator: set AWS_ENDPOINT_URL "
            "(see `reengage local`); in AWS the resources come from `sam deploy`"
        )
    return endpoint
