"""ReplyFunction: inbound replies (SES receipt rule -> S3 -> here) set the lead's response status."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any
from urllib.parse import unquote_plus

from reengage.aws import client, lead_store, reply_classifier
from reengage.clock import utc_now
from reengage.observability import count_by, logger
from reengage.replies import handle_reply
from reengage.settings import Settings

settings = Settings.from_env(os.environ)
store = lead_store(settings)
classifier = reply_classifier(settings)
s3 = None


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global s3
    s3 = s3 or client("s3")
    outcomes: Counter[str] = Counter()
    for record in event.get("Records", []):
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        outcome = handle_reply(raw, store, utc_now(), settings.max_followups, classifier)
        logger.info("inbound email", extra={"key": key, "outcome": outcome})
        outcomes[outcome] += 1
    count_by("InboundReplies", outcomes)
    return dict(outcomes)
