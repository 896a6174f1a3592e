"""UnsubscribeFunction (Lambda Function URL): one-click unsubscribe (RFC 8058) and its confirmation page.

Every request that is not a well-formed Function URL request gets a 400 page (and a counted
rejection), every link that is not ours a 403: never a 500 with a traceback.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from reengage import wiring
from reengage.domain.clock import utc_now
from reengage.domain.unsubscribe import Page, bad_request_page
from reengage.observability import logger, reject
from reengage.ports import Stores
from reengage.services.responses import unsubscribe_request
from reengage.settings import Settings

MAX_BODY = 64 * 1024


@cache
def _deployment() -> tuple[Settings, Stores, Callable[[], bytes]]:
    settings = Settings.from_env(os.environ)
    return settings, wiring.stores(settings), lambda: wiring.unsubscribe_key(settings)


def _request(event: Any) -> tuple[str, dict[str, str], str] | str:
    """(method, query parameters, body) of a Function URL event, or why it is not one."""
    if not isinstance(event, Mapping):
        return "not a JSON object"
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, Mapping) else None
    method = http.get("method") if isinstance(http, Mapping) else None
    if not isinstance(method, str) or not method.isascii() or not 1 <= len(method) <= 16:
        return "no requestContext.http.method"
    params = event.get("queryStringParameters") or {}
    if not isinstance(params, Mapping) or not all(isinstance(v, str) for v in params.values()):
        return "queryStringParameters is not a map of strings"
    body = event.get("body") or ""
    if not isinstance(body, str) or len(body) > MAX_BODY:
        return "body is not a string of at most 64 KiB"
    if event.get("isBase64Encoded") is True:
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            return "body is not base64"
    return method.upper(), {str(k): v for k, v in params.items()}, body


def _response(page: Page) -> dict[str, Any]:
    return {"statusCode": page.status, "headers": {"Content-Type": page.content_type}, "body": page.body}


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    settings, stores, key = _deployment()
    request = _request(event)
    if isinstance(request, str):
        reject("unsubscribe request", request)
        return _response(bad_request_page())
    method, params, body = request
    page = unsubscribe_request(method, params, body, key(), stores, utc_now(), settings.policy)
    logger.info("unsubscribe request", extra={"method": method, "status": page.status})
    return _response(page)
