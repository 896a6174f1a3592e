"""The CRM events the emulator captured (every EventBridge PutEvents it accepted), for `reengage events`.

The emulator records each entry of a PutEvents request moto accepted and serves them at
`GET /reengage/events`, oldest first; `POST /moto-api/reset` clears them.
"""

from __future__ import annotations

import io
import json
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

EVENTS_PATH = "/reengage/events"
_CAPTURED: list[dict[str, Any]] = []
_LOCK = threading.Lock()


@dataclass(frozen=True)
class CapturedEvent:
    bus: str
    source: str
    detail_type: str
    detail: dict[str, Any]


def is_put_events(environ: dict[str, Any]) -> bool:
    return str(environ.get("HTTP_X_AMZ_TARGET", "")).endswith(".PutEvents")


def request_entries(environ: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries of a PutEvents request (the body is put back for moto to read)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        entries = json.loads(body or b"{}").get("Entries", [])
    except ValueError:
        return []
    return [entry for entry in entries if isinstance(entry, dict)]


def capture(entries: list[dict[str, Any]]) -> None:
    with _LOCK:
        _CAPTURED.extend(entries)


def clear() -> None:
    with _LOCK:
        _CAPTURED.clear()


def served() -> bytes:
    with _LOCK:
        return json.dumps(_CAPTURED).encode()


def captured_events(endpoint: str) -> list[CapturedEvent]:
    """The events the emulator at `endpoint` accepted, oldest first."""
    with urllib.request.urlopen(f"{endpoint}{EVENTS_PATH}", timeout=30) as response:  # noqa: S310 - loopback
        entries = json.load(response)
    found = []
    for entry in entries:
        try:
            detail = json.loads(entry.get("Detail") or "{}")
        except ValueError:
            detail = {"unreadable": entry.get("Detail")}
        found.append(
            CapturedEvent(
                str(entry.get("EventBusName", "default")),
                str(entry.get("Source", "")),
                str(entry.get("DetailType", "")),
                detail,
            )
        )
    return found
