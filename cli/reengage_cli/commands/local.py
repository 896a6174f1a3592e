"""`reengage local`, `bootstrap` and `env`: the emulator, its resources, and the functions' environment."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from urllib.parse import urlsplit, urlunsplit

from reengage_cli.config import load_settings, parameter_overrides, require_endpoint
from reengage_cli.emulator import provision
from reengage_cli.emulator.server import DUMMY_CREDENTIALS, LocalEmulator, endpoint_override, use_endpoint
from reengage_cli.output import EXIT_OK, say


def cmd_bootstrap(args: argparse.Namespace) -> int:
    endpoint = require_endpoint("bootstrap")
    provisioned = provision.provision(parameter_overrides(args.parameter))
    say(f"Provisioned on {endpoint}:")
    for logical, physical in sorted(provisioned.resources.items()):
        say(f"  {logical}: {physical}")
    return EXIT_OK


def _environment(shell_env: dict[str, str]) -> dict[str, str]:
    values = load_settings(shell_env).to_env()
    endpoint = endpoint_override(shell_env)
    if endpoint:
        values["AWS_ENDPOINT_URL"] = endpoint
    return values


def _for_docker(url: str) -> str:
    # `sam local invoke` runs the function in a container: loopback there is the container itself.
    parts = urlsplit(url)
    if parts.hostname in {"127.0.0.1", "localhost"}:
        return urlunsplit(parts._replace(netloc=f"host.docker.internal:{parts.port}"))
    return url


def cmd_env(args: argparse.Namespace) -> int:
    values = _environment(dict(os.environ))
    if args.format == "sam-json":
        if "AWS_ENDPOINT_URL" in values:
            values["AWS_ENDPOINT_URL"] = _for_docker(values["AWS_ENDPOINT_URL"])
        say(json.dumps({"Parameters": values}, indent=2))
    else:
        for name, value in values.items():
            say(f"export {name}={shlex.quote(value)}")
    return EXIT_OK


def cmd_local(args: argparse.Namespace) -> int:
    server = LocalEmulator(host=args.host, port=args.port)
    endpoint = server.start()
    try:
        use_endpoint(endpoint, os.environ)
        os.environ.update(provision.provision().environment)  # the local Function URL reads these
        say(f"reengage emulator listening on {endpoint} (Ctrl-C to stop). In another shell:")
        say(f"export AWS_ENDPOINT_URL={endpoint}")
        for name, value in DUMMY_CREDENTIALS.items():
            say(f"export {name}={value}")
        say(f"export AWS_DEFAULT_REGION={os.environ['AWS_DEFAULT_REGION']}")
        say("then: reengage import FILE; reengage run; reengage outbox")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("stopped")
    finally:
        server.stop()
    return EXIT_OK
