"""The embedded default: moto in server mode on loopback (provisioned from template.yaml by provision.py).

Nothing in the application knows it talks to an emulator: the CLI sets the standard
AWS_ENDPOINT_URL variable and every boto3/pynamodb client follows it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, MutableMapping
from typing import Any, Self

from reengage_cli.emulator import events, iam, moto_fixes

DEFAULT_REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def endpoint_override(env: Mapping[str, str]) -> str | None:
    return env.get("AWS_ENDPOINT_URL") or None


LOCAL_UNSUBSCRIBE_PATH = "/reengage/unsubscribe"


def _local_unsubscribe(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The UnsubscribeFunction's Function URL, served by the emulator on its own port."""
    from urllib.parse import parse_qsl

    from reengage import wiring
    from reengage.domain.clock import utc_now
    from reengage.services.responses import unsubscribe_request
    from reengage.settings import Settings

    settings = Settings.from_env(os.environ)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length).decode("utf-8", errors="replace") if length else ""
    with iam.acting_as(iam.registered("UnsubscribeFunction")):
        page = unsubscribe_request(
            environ["REQUEST_METHOD"].upper(),
            dict(parse_qsl(environ.get("QUERY_STRING", ""))),
            body,
            wiring.unsubscribe_key(settings),
            wiring.stores(settings),
            utc_now(),
            settings.policy,
        )
    start_response(f"{page.status} {'OK' if page.status == 200 else 'Error'}", [("Content-Type", page.content_type)])
    return [page.body.encode()]


class _Serialized:
    """Runs one request at a time. DynamoDB applies a conditional write atomically; moto's
    backends check and write without a lock, so concurrent requests could both pass a
    condition. Serializing gives the emulator DynamoDB's guarantee. The local stand-in for
    the unsubscribe Function URL runs outside the lock (it calls the emulator itself).
    Requests signed with a function role's credentials are authorized first (iam.py)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("PATH_INFO", "").startswith(LOCAL_UNSUBSCRIBE_PATH):
            return _local_unsubscribe(environ, start_response)
        if environ.get("PATH_INFO", "") == events.EVENTS_PATH:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [events.served()]
        with self.lock:
            if environ.get("PATH_INFO", "") == "/moto-api/reset":
                iam.reset_denials()
                events.clear()
            refusal = iam.authorize(environ, start_response)
            if refusal is not None:
                return refusal
            if not events.is_put_events(environ):
                return [b"".join(self.app(environ, start_response))]
            entries = events.request_entries(environ)
            status: list[str] = []

            def recording_start_response(code: str, headers: Any, *args: Any) -> Any:
                status.append(code)
                return start_response(code, headers, *args)

            body = b"".join(self.app(environ, recording_start_response))
            if status and status[0].startswith("200"):
                accepted = json.loads(body or b"{}").get("Entries", [])
                events.capture([entry for entry, result in zip(entries, accepted, strict=False) if "EventId" in result])
            return [body]


class LoopbackServer(ABC):
    """A server a test or the CLI starts on 127.0.0.1 in a thread, and stops (also as a context manager)."""

    _server: Any = None
    _thread: threading.Thread | None = None

    @abstractmethod
    def start(self) -> str:
        """Start serving; the base URL."""

    def _serve(self, server: Any) -> str:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        host, port = server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class LocalEmulator(LoopbackServer):
    """moto's server on 127.0.0.1 (a free port unless one is given), stopped by whoever started it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines
        self.host = host
        self.port = port
        self.endpoint = ""

    def start(self) -> str:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        moto_fixes.install()
        iam.install_credential_switch()
        app = _Serialized(DomainDispatcherApplication(create_backend_app))
        server = make_server(self.host, self.port, app, threaded=True, request_handler=MotoRequestHandler)
        self.endpoint = self._serve(server)
        return self.endpoint


def use_endpoint(endpoint: str, env: MutableMapping[str, str]) -> None:
    """Point every AWS client of this process at `endpoint`, with dummy credentials if none are set."""
    env["AWS_ENDPOINT_URL"] = endpoint
    for name, value in DUMMY_CREDENTIALS.items():
        env.setdefault(name, value)
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", DEFAULT_REGION))
