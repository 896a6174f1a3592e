"""Time handling: every time reengage writes is UTC in one fixed-width form.

Leads written by other systems carry ISO-8601 times in any form (`Z`, `+00:00`,
naive, with or without fractions); they are parsed here and never compared as text.
The canonical form is fixed width so that DynamoDB sort-key order is time order.
"""

from __future__ import annotations

from datetime import UTC, datetime

CANONICAL_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class InvalidTimeError(ValueError):
    """A time value that is not ISO-8601."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_time(value: str) -> datetime:
    """Parse any ISO-8601 date or date-time; naive values are taken as UTC."""
    text = value.strip()
    if not text:
        raise InvalidTimeError("empty time")
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as error:
        raise InvalidTimeError(f"not an ISO-8601 time: {value!r}") from error
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """The canonical UTC form, e.g. `2026-11-24T09:00:00.000000Z`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(CANONICAL_FORMAT)


def canonical(value: str) -> str:
    """Re-write any ISO-8601 time in the canonical form."""
    return format_time(parse_time(value))
