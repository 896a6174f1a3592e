"""ReplyFunction: inbound replies (SES receipt rule -> S3 -> here) set the lead's response status.

Total over its input: a record that is not an S3 notification, names an object that is gone
or too large, or holds an email over a parsing limit is a counted rejection (InboundReplies
metric + one log line), never an exception that Lambda would retry in vain.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

from reengage import wiring
from reengage.adapters.inbound_mail import EmailTooLargeError, MissingEmailError, S3InboundMail
from reengage.domain.clock import utc_now
from reengage.domain.leads import ResponseStatus
from reengage.domain.replies import MAX_REPLY_BYTES
from reengage.observability import count_by, logger, reject
from reengage.ports import Stores
from reengage.services.responses import handle_reply
from reengage.settings import Settings

# Each record's work is bounded (limits in domain/replies.py); this is what one needs at most.
TIME_PER_RECORD_MS = 5_000


@cache
def _deployment() -> tuple[Settings, Stores, Callable[[str], ResponseStatus], S3InboundMail]:
    settings = Settings.from_env(os.environ)
    mail = S3InboundMail(wiring.client("s3"))
    return settings, wiring.stores(settings), wiring.reply_classifier(settings), mail


def s3_location(record: Any) -> tuple[str, str] | None:
    """(bucket, key) of an S3 notification record, or None when it is not one."""
    s3 = record.get("s3") if isinstance(record, Mapping) else None
    bucket = s3.get("bucket") if isinstance(s3, Mapping) else None
    item = s3.get("object") if isinstance(s3, Mapping) else None
    name = bucket.get("name") if isinstance(bucket, Mapping) else None
    key = item.get("key") if isinstance(item, Mapping) else None
    if not isinstance(name, str) or not isinstance(key, str) or not name or not key or len(key) > 2048:
        return None
    return name, unquote_plus(key)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    settings, stores, classifier, mail = _deployment()
    outcomes: Counter[str] = Counter()
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        reject("S3 event", f"no Records list ({type(event).__name__})")
        records, outcomes["invalid_event"] = [], 1
    key_bytes = wiring.reply_key(settings) if records else b""
    for index, record in enumerate(records):
        if context is not None and context.get_remaining_time_in_millis() < TIME_PER_RECORD_MS:
            count_by("InboundReplies", outcomes | Counter(out_of_time=len(records) - index))
            logger.error("out of time: the invocation is retried", extra={"left": len(records) - index})
            raise TimeoutError(f"{len(records) - index} inbound emails left unread")
        location = s3_location(record)
        if location is None:
            reject("S3 record", "not an S3 notification (bucket name and object key)", index=index)
            outcomes["invalid_record"] += 1
            continue
        try:
            raw = mail.read(*location, MAX_REPLY_BYTES)
        except (MissingEmailError, EmailTooLargeError) as error:
            reject("inbound email", str(error), key=location[1][:300])
            outcomes["missing_object" if isinstance(error, MissingEmailError) else "too_large"] += 1
            continue
        outcome = handle_reply(raw, stores, utc_now(), settings.policy, classifier, key_bytes)
        logger.info("inbound email", extra={"key": location[1], "outcome": outcome})
        outcomes[outcome] += 1
    count_by("InboundReplies", outcomes)
    return dict(outcomes)
