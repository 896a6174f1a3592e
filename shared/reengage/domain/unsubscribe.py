"""One-click unsubscribe (RFC 8058): signed links and the endpoint's pages.

A link carries the lead id and a token: the expiry and an HMAC-SHA256 of both with a
key kept in Secrets Manager, so ids cannot be guessed into working links and links
cannot be forged. The endpoint (services/responses.py) accepts the one-click POST (no
redirect) and shows a confirmation page on GET; the List-Unsubscribe headers are written
by the SES mailer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

TOKEN_LIFETIME = timedelta(days=400)  # longer than any sequence, so old emails still work
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


class InvalidTokenError(ValueError):
    """A link that was not issued by reengage, or has expired."""


def _signature(lead_id: str, expires: int, key: bytes) -> str:
    digest = hmac.new(key, f"{lead_id}|{expires}".encode(), hashlib.sha256).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_token(lead_id: str, key: bytes, now: datetime) -> str:
    expires = int((now + TOKEN_LIFETIME).timestamp())
    return f"{expires}.{_signature(lead_id, expires, key)}"


_EXPIRES = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() accepts "²"
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_LEAD_ID = 2048


def check_token(lead_id: str, token: str, key: bytes, now: datetime) -> None:
    """Raises InvalidTokenError unless `token` was issued for `lead_id` and has not expired."""
    expires_text, _, signature = token.partition(".")
    if not _EXPIRES.fullmatch(expires_text) or not _SIGNATURE.fullmatch(signature) or len(lead_id) > MAX_LEAD_ID:
        raise InvalidTokenError("malformed link")
    if not hmac.compare_digest(signature, _signature(lead_id, int(expires_text), key)):
        raise InvalidTokenError("this link was not issued by us")
    if int(expires_text) < now.timestamp():
        raise InvalidTokenError("this link has expired")


@dataclass(frozen=True)
class UnsubscribeLinks:
    """The signed HTTPS link every email carries."""

    base_url: str
    key: Callable[[], bytes]

    def url(self, lead_id: str, now: datetime) -> str:
        token = make_token(lead_id, self.key(), now)
        separator = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{separator}{urlencode({'lead': lead_id, 'token': token})}"


@dataclass(frozen=True)
class Page:
    status: int
    body: str
    content_type: str = "text/html; charset=utf-8"


def _page(title: str, text: str, form: str = "") -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
        f"<title>{html.escape(title)}</title></head>"
        "<body style='font-family:sans-serif;max-width:32em;margin:3em auto'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{form}</body></html>"
    )


def invalid_link_page(error: InvalidTokenError) -> Page:
    return Page(403, _page("Link not valid", f"{error}. Reply to the email and we will remove you by hand."))


def confirmation_page(lead_id: str, token: str) -> Page:
    form = (
        f"<form method='post' action='?{html.escape(urlencode({'lead': lead_id, 'token': token}))}'>"
        f"<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit'>Unsubscribe</button></form>"
    )
    return Page(200, _page("Unsubscribe?", "You will not receive any more follow-ups from us.", form))


def bad_request_page() -> Page:
    return Page(400, _page("Bad request", "Use the link in the email."))


def not_allowed_page() -> Page:
    return Page(405, _page("Not allowed", "Use the link in the email."))


def unsubscribed_page() -> Page:
    return Page(200, _page("You are unsubscribed", "You will not receive any more follow-ups from us."))
