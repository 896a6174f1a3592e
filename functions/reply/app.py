"""ReplyFunction: inbound replies (SES receipt rule -> S3 -> here) set the lead's response status."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

from reengage import wiring
from reengage.domain.clock import utc_now
from reengage.domain.leads import ResponseStatus
from reengage.observability import count_by, logger
from reengage.ports import Stores
from reengage.services.responses import handle_reply
from reengage.settings import Settings


@cache
def _deployment() -> tuple[Settings, Stores, Callable[[str], ResponseStatus], Any]:
    settings = Settings.from_env(os.environ)
    return settings, wiring.stores(settings), wiring.reply_classifier(settings), wiring.client("s3")


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, stores, classifier, s3 = _deployment()
    outcomes: Counter[str] = Counter()
    for record in event.get("Records", []):
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        outcome = handle_reply(raw, stores, utc_now(), settings.policy, classifier)
        logger.info("inbound email", extra={"key": key, "outcome": outcome})
        outcomes[outcome] += 1
    count_by("InboundReplies", outcomes)
    return dict(outcomes)
