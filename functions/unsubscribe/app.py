"""UnsubscribeFunction (Lambda Function URL): one-click unsubscribe (RFC 8058) and its confirmation page."""

from __future__ import annotations

import base64
import os
from functools import cache
from typing import Any

from reengage import wiring
from reengage.domain.clock import utc_now
from reengage.observability import logger
from reengage.ports import Stores
from reengage.services.responses import unsubscribe_request
from reengage.settings import Settings


@cache
def _deployment() -> tuple[Settings, Stores]:
    settings = Settings.from_env(os.environ)
    return settings, wiring.stores(settings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, stores = _deployment()
    method = str(event.get("requestContext", {}).get("http", {}).get("method", "GET")).upper()
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", errors="replace")
    page = unsubscribe_request(
        method,
        event.get("queryStringParameters") or {},
        body,
        wiring.unsubscribe_key(settings),
        stores,
        utc_now(),
        settings.policy,
    )
    logger.info("unsubscribe request", extra={"method": method, "status": page.status})
    return {"statusCode": page.status, "headers": {"Content-Type": page.content_type}, "body": page.body}
