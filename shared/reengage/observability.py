"""Logger and metrics for the handlers, built once per cold start, and the catalogue of metrics.

The layer's own modules log through the standard `reengage` logger; the handlers give it
the Powertools JSON formatter, so every line is structured and carries the Lambda
context and the correlation keys (lead id, campaign id). Email addresses are masked in
every log line. `METRICS` lists every metric the code emits with its dimensions; the
dashboard test checks the dashboard against it.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit, single_metric

METRICS_NAMESPACE = "Reengage"
# Fixed, not read from POWERTOOLS_SERVICE_NAME: the dashboard and alarms name this dimension.
SERVICE = "reengage"

# name -> extra dimension (besides `service`), or None
METRICS: dict[str, str | None] = {
    # scheduler
    "SchedulerRuns": None,
    "LeadsDue": None,
    "LeadsClaimed": None,
    "ClaimsReclaimed": None,
    "EnqueueFailed": None,
    "LeadsLeftForNextRun": None,
    "DuplicateAddresses": None,
    "SendsSettledInDoubt": None,
    "LeadsSetAside": None,  # unreadable items moved out of the schedule this run
    "SchedulerLeadErrors": None,  # leads a write failed for; the run went on
    "InvalidEvents": None,
    # sender
    "FollowUpsSent": "Stage",
    "FollowUpsSkipped": "Reason",
    "FollowUpsFailed": None,
    "FollowUpsInDoubt": None,
    "SendsDeferredByCap": None,
    "FollowUpsDeferred": "Reason",  # back to due for a later window: daily cap, window closed, company pause
    "FollowUpsSentByLocalHour": "LocalHour",  # the hour on the lead's own clock when it went out
    "RecordsRetried": None,
    "AIMessages": None,
    "AIFallbacks": None,
    "AIPromptTokens": None,
    "AICompletionTokens": None,
    # statistics gauges
    "LeadsTotal": None,
    "LeadsEligible": None,
    "LeadsWaiting": None,
    "LeadsByStage": "Stage",
    "LeadsByResponse": "ResponseStatus",
    "RecentReengagements": None,
    "ReengagementSuccessRate": None,
    "SendsPossiblySent": None,
    "LeadsInvalid": None,  # gauge: items set aside as unreadable
    # upkeep
    "StaleClaimsCleared": None,
    # feedback
    "SesEvents": "Outcome",
    "InboundReplies": "Outcome",
    # CRM (SyncFunction)
    "CrmEventsPublished": None,
    "CrmRecordsPulled": None,
    "CrmRecordsRejected": None,  # records that cannot be leads (reported, the others land)
    "CrmRecordsPushed": None,
    "CrmRecordsRefused": None,  # updates Airtable refused (deleted record, unknown field): left for review
    "CrmSyncConfigErrors": None,  # stream batches whose push was skipped: the Airtable settings cannot be used
}


# -- masking addresses in logs ------------------------------------------------------
# Around an "@", an address is parsed rather than pattern-matched: the local part runs back to a
# character no local part holds unquoted (RFC 5322 atext is wide: {weird}@, o'brien@, and RFC 6532
# allows any non-ASCII), or is a quoted string; the domain runs on over letters of any script, digits,
# hyphens and dots (IDN: bücher.de, 例え.jp, with the ideographic full stops IDNA maps), or is a literal.
_LOCAL_STOPS = frozenset('<>()[],;:"@\\') | frozenset("\u3000")


def _local_start(text: str, at: int, floor: int) -> int:
    """Where the local part ending before `at` starts (== at when there is none), not before `floor`."""
    if at > floor and text[at - 1] == '"':  # a quoted local part: back to its opening quote
        index = at - 2
        while index >= floor:
            if text[index] == '"' and (index == floor or text[index - 1] != "\\"):
                return index
            index -= 1
        at -= 1  # an unmatched quote: the characters before it are the local part
    index = at
    while index > floor and not text[index - 1].isspace() and text[index - 1] not in _LOCAL_STOPS:
        index -= 1
    return index


def _has_domain(text: str, at: int) -> bool:
    """A host name (any script) or a domain literal follows the @."""
    after = text[at + 1 : at + 2]
    return bool(after) and (after.isalnum() or after == "[")


def mask_addresses(text: str) -> str:
    """Every email address in `text` with its local part masked: `ana.lima@example.com` ->
    `a***@example.com`, `"kai müller"@bücher.de` -> `"k***"@bücher.de`, `z@例え.jp` -> `z***@例え.jp`.
    Enough to tell leads apart in a log, not to mail them. Domains are kept."""
    if "@" not in text:
        return text
    out: list[str] = []
    done = floor = 0
    at = text.find("@")
    while at >= 0:
        start = _local_start(text, at, floor)
        if start < at and _has_domain(text, at):
            local = text[start:at]
            quoted = local.startswith('"') and len(local) > 1
            out.append(text[done:start])
            out.append(f'"{local[1:2]}***"' if quoted else f"{local[:1]}***")
            done = at
        floor = at + 1
        at = text.find("@", at + 1)
    out.append(text[done:])
    return "".join(out)


def mask_emails(text: str) -> str:
    """`ana.lima@example.com` -> `a***@example.com`: enough to tell leads apart, not to mail them.
    Addresses are parsed (`mask_addresses`), so international and unusual ones are masked too."""
    return mask_addresses(text)


def _masked(value: Any, depth: int = 0) -> Any:
    """Every string in a log line's structure masked, before it is serialised (JSON would escape
    `bücher.de` to `b\\u00fccher.de`, which no pattern over the output would recognise)."""
    if isinstance(value, str):
        return mask_addresses(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth > 20:
        return "<nested too deep to log>"
    if isinstance(value, dict):
        return {mask_addresses(str(key)): _masked(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(item, depth + 1) for item in value]
    return mask_addresses(str(value))


class MaskingFormatter(LambdaPowertoolsFormatter):
    """Masks addresses in every field of a log line (message, extras, appended keys, exceptions)."""

    def serialize(self, log: Any) -> str:
        return super().serialize(_masked(log))


logging.getLogger("reengage")
logger = Logger(service=SERVICE, logger_formatter=MaskingFormatter())
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)
copy_config_to_registered_loggers(source_logger=logger, include={"reengage"})


def count(name: str, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
    """A metric without an extra dimension (flushed with the invocation's other metrics)."""
    assert METRICS[name] is None, f"{name} needs its {METRICS[name]} dimension"
    metrics.add_metric(name=name, unit=unit, value=value)


def count_by(name: str, values: Counter[str] | dict[str, float], unit: MetricUnit = MetricUnit.Count) -> None:
    """One metric per value of its dimension (Stage, Reason...), each published on its own."""
    dimension = METRICS[name]
    assert dimension is not None, f"{name} has no dimension"
    for key, value in values.items():
        with single_metric(
            name=name,
            unit=unit,
            value=value,
            namespace=METRICS_NAMESPACE,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name=dimension, value=str(key) or "none")


_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescaped(value: Any) -> Any:
    """Raw JSON text as the characters it stands for, so masking sees `user@例え.jp`, not `\\u4f8b...`."""
    if not isinstance(value, str):
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return _JSON_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), value)  # cut-off JSON too
    return decoded if isinstance(decoded, dict | list | str) else value


def reject(what: str, reason: str, **details: Any) -> None:
    """A counted rejection of malformed input: one log line and the InvalidEvents metric (published
    at once, so handlers without `log_metrics` report it too). Retrying cannot fix such input."""
    readable = {name: _unescaped(value) for name, value in details.items()}
    logger.error("input rejected", extra={"input": what, "reason": reason[:500], **readable})
    with single_metric(
        name="InvalidEvents",
        unit=MetricUnit.Count,
        value=1,
        namespace=METRICS_NAMESPACE,
        default_dimensions=metrics.default_dimensions,
    ):
        pass


def send_outcome_metrics(outcomes: Iterable[Any], retried: int) -> None:
    """The sender's metrics for one batch of outcomes (reengage.sender.SendOutcome)."""
    outcomes = list(outcomes)
    sent = Counter(o.stage for o in outcomes if o.kind == "sent")
    skipped = Counter(o.reason.split(":")[0] for o in outcomes if o.kind == "skipped")
    count_by("FollowUpsSent", sent)
    count_by("FollowUpsSkipped", skipped)
    kinds = Counter(o.kind for o in outcomes)
    count("FollowUpsFailed", kinds["failed"])
    count("FollowUpsInDoubt", kinds["in_doubt"])
    deferred = Counter(o.reason for o in outcomes if o.kind == "deferred")
    count("SendsDeferredByCap", deferred["daily_send_cap_reached"])
    count_by("FollowUpsDeferred", deferred)
    count_by("FollowUpsSentByLocalHour", Counter(f"{o.local_hour:02d}" for o in outcomes if o.kind == "sent"))
    count("RecordsRetried", retried)
    written = [o for o in outcomes if o.generator]
    count("AIMessages", sum(o.generator == "ai" for o in written))
    count("AIFallbacks", sum(bool(o.fallback_reason) for o in written))
    count("AIPromptTokens", sum(o.prompt_tokens for o in written))
    count("AICompletionTokens", sum(o.completion_tokens for o in written))
