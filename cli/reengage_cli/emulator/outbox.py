"""The emails the emulator captured (moto's /moto-api/data.json), parsed for `reengage outbox`."""

from __future__ import annotations

import email
import email.policy
import json
import urllib.request
from dataclasses import dataclass
from email.message import Message


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
