"""UnsubscribeFunction (Lambda Function URL): one-click unsubscribe (RFC 8058) and its confirmation page."""

from __future__ import annotations

import base64
import os
from typing import Any

from reengage.aws import lead_store, secret_text
from reengage.clock import utc_now
from reengage.observability import logger
from reengage.settings import Settings
from reengage.unsubscribe import handle_request

settings = Settings.from_env(os.environ)
store = lead_store(settings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    method = str(event.get("requestContext", {}).get("http", {}).get("method", "GET")).upper()
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", errors="replace")
    key = secret_text(settings.unsubscribe_key_secret, "key").encode()
    page = handle_request(
        method, event.get("queryStringParameters") or {}, body, key, store, utc_now(), settings.max_followups
    )
    logger.info("unsubscribe request", extra={"method": method, "status": page.status})
    return {"statusCode": page.status, "headers": {"Content-Type": page.content_type}, "body": page.body}
