"""Bulk imports over HTTP on the emulator: groups of leads read by one BatchGetItem and written by
one transaction, and what another writer does between that read and that write is merged, never
overwritten."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from reengage import wiring
from reengage.domain.clock import utc_now
from reengage.domain.leads import FollowUpPolicy, Lead, ResponseStatus
from reengage.ports import Leads, UnreadableLead
from reengage.services.imports import import_rows
from reengage.services.responses import record_response
from tests.conftest import Emulator
from tests.integration.test_pipeline import lead_row, seed


class _Interleaved:
    """The real leads table; another writer's change to a lead runs right after the bulk read of
    that lead's group returns (before its write). Notes the leads a bulk write refused."""

    def __init__(self, real: Leads, between: dict[str, Callable[[], None]]) -> None:
        self.real = real
        self.between = between
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def get_many(self, lead_ids: Sequence[str]) -> dict[str, Lead | UnreadableLead]:
        found = self.real.get_many(lead_ids)
        for lead_id in lead_ids:
            if change := self.between.pop(lead_id, None):
                change()
        return found

    def put_all(self, writes: Sequence[tuple[Lead, Lead | None]]) -> list[bool]:
        written = self.real.put_all(writes)
        self.refused += [lead.id for (lead, _), landed in zip(writes, written, strict=True) if not landed]
        return written


def test_a_reply_and_a_second_import_landing_between_the_bulk_read_and_write_are_merged_not_clobbered(
    aws: Emulator, tmp_path: Path
) -> None:
    # Given 150 leads already imported (two groups: 100 and 50)
    seed(aws, tmp_path, [lead_row(n) for n in range(1, 151)])
    stores = wiring.stores(aws.settings)
    policy = FollowUpPolicy()

    def reply() -> None:
        record_response(stores, "lead-005", ResponseStatus.INTERESTED, "reply", utc_now(), policy)

    def another_import() -> None:
        other = import_rows(stores, [(1, lead_row(151, response_status="Converted"))], utc_now(), policy)
        assert other.created == 1

    # When the CRM export (renamed companies, lead 151 new to it, "No Response" everywhere) is
    # imported, and a reply to lead 5 and another import creating lead 151 as Converted land
    # after their groups were read and before they are written
    rows = [lead_row(n, company="Renamed Co", response_status="No Response") for n in range(1, 152)]
    leads = _Interleaved(stores.leads, {"lead-005": reply, "lead-151": another_import})
    report = import_rows(replace(stores, leads=leads), enumerate(rows, start=1), utc_now(), policy)
    # Then the bulk writes refused exactly those two (their conditions failed), and each was read
    # again and merged: every row landed, none rejected
    assert sorted(leads.refused) == ["lead-005", "lead-151"]
    assert report.rejected == [] and (report.created, report.updated) == (0, 151)
    # And the reply stands with its history, the sequence stopped, the CRM's rename applied on top
    replied = stores.leads.get("lead-005")
    assert replied is not None
    assert replied.response_status == ResponseStatus.INTERESTED and replied.schedule_state is None
    assert [entry["source"] for entry in replied.engagement_history if entry["outcome"] == "response"] == ["reply"]
    assert replied.company == "Renamed Co"
    # And the lead the other import created keeps its Converted (a file never revives a stopped lead)
    converted = stores.leads.get("lead-151")
    assert converted is not None and converted.response_status == "Converted" and converted.company == "Renamed Co"
    # And the rest of both groups landed as written
    for lead_id in ("lead-001", "lead-100", "lead-150"):
        lead = stores.leads.get(lead_id)
        assert lead is not None and lead.company == "Renamed Co" and lead.response_status == "No Response"


def test_a_bulk_read_names_a_stored_item_it_cannot_read_and_the_rest_still_land(aws: Emulator, tmp_path: Path) -> None:
    import boto3

    seed(aws, tmp_path, [lead_row(1), lead_row(2)])
    boto3.client("dynamodb").update_item(
        TableName=aws.settings.leads_table_name,
        Key={"id": {"S": "lead-001"}},
        UpdateExpression="SET suppressed = :s",
        ExpressionAttributeValues={":s": {"S": "yes"}},
    )
    stores = wiring.stores(aws.settings)
    assert isinstance(stores.leads.get_many(["lead-001", "lead-002", "lead-404"])["lead-001"], UnreadableLead)
    report = import_rows(
        stores, enumerate([lead_row(1), lead_row(2), lead_row(3)], start=1), utc_now(), FollowUpPolicy()
    )
    (error,) = report.rejected
    assert (error.row, error.lead_id, error.field) == (1, "lead-001", "id")
    assert error.reason.startswith("stored lead unreadable: lead 'lead-001':")
    assert (report.created, report.updated) == (1, 1)
