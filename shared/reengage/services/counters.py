"""Keeping the statistics counters up to date from the leads table's DynamoDB stream.

In AWS, CountersFunction receives the stream batches; locally, `reengage status` reads
the stream itself (reengage_cli/emulator/streams.py). Both apply the deltas computed here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reengage.domain.leads import Lead
from reengage.domain.stats import UNREADABLE, Counts, Image, add, delta
from reengage.ports import InvalidLeadDataError

logger = logging.getLogger(__name__)

ReadLead = Callable[[dict[str, Any]], Lead]


def _image(read_lead: ReadLead, image: Mapping[str, Any] | None, record_id: str) -> Image:
    if not image:
        return None
    try:
        return read_lead(dict(image))
    except InvalidLeadDataError as error:
        # Counted as a lead set aside: `reengage status` shows how many items nobody can read.
        logger.warning("unreadable lead image in the stream", extra={"record": record_id, "error": str(error)})
        return UNREADABLE


def stream_delta(records: Iterable[Mapping[str, Any]], read_lead: ReadLead) -> tuple[Counts, Counts]:
    """The sum of the deltas of a batch of stream records (INSERT, MODIFY, REMOVE)."""
    totals: Counts = {}
    days: Counts = {}
    for record in records:
        change = record.get("dynamodb", {})
        record_id = str(record.get("eventID", ""))
        old = _image(read_lead, change.get("OldImage"), record_id)
        new = _image(read_lead, change.get("NewImage"), record_id)
        moved_totals, moved_days = delta(old, new)
        add(totals, moved_totals)
        add(days, moved_days)
    return totals, days
