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


class MalformedStreamRecordError(ValueError):
    """A record that is not a DynamoDB stream record of lead images."""


def _image(read_lead: ReadLead, image: Any, record_id: str) -> Image:
    if not image:
        return None
    if not isinstance(image, Mapping):
        raise MalformedStreamRecordError(f"record {record_id}: an image that is not a map")
    try:
        return read_lead(dict(image))
    except InvalidLeadDataError as error:
        # Counted as a lead set aside: `reengage status` shows how many items nobody can read.
        logger.warning("unreadable lead image in the stream", extra={"record": record_id, "error": str(error)})
        return UNREADABLE
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as error:
        # Not DynamoDB's attribute-value shape at all ({"S": 5}, {"XX": ...}): no stream sends this.
        raise MalformedStreamRecordError(f"record {record_id}: {type(error).__name__}") from error


def stream_delta(
    records: Iterable[Any], read_lead: ReadLead, rejected: list[str] | None = None
) -> tuple[Counts, Counts]:
    """The sum of the deltas of a batch of stream records (INSERT, MODIFY, REMOVE). A record that is
    not a stream record of lead images is left out and named in `rejected` (when given) or raises."""
    totals: Counts = {}
    days: Counts = {}
    for record in records:
        try:
            if not isinstance(record, Mapping) or not isinstance(record.get("dynamodb", {}), Mapping):
                raise MalformedStreamRecordError("not a DynamoDB stream record")
            change = record.get("dynamodb", {})
            record_id = str(record.get("eventID", ""))[:100]
            old = _image(read_lead, change.get("OldImage"), record_id)
            new = _image(read_lead, change.get("NewImage"), record_id)
            try:
                moved_totals, moved_days = delta(old, new)
            except (TypeError, ValueError, AttributeError) as error:  # an attribute of a type no lead has
                raise MalformedStreamRecordError(f"record {record_id}: {type(error).__name__}: {error}") from error
        except MalformedStreamRecordError as error:
            if rejected is None:
                raise
            rejected.append(str(error)[:300])
            continue
        add(totals, moved_totals)
        add(days, moved_days)
    return totals, days
