"""The Airtable sync over HTTP: pyairtable against the local Airtable-compatible server, leads in the emulator.

The oracle is the server's own record store (what Airtable would hold) and the leads table as
read back through DynamoDB, never the sync's report alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from reengage import wiring
from reengage.adapters.airtable import AirtableTable
from reengage.adapters.sync_state import DynamoSyncState
from reengage.domain.airtable_mapping import DEFAULT_FIELDS, FieldMapping
from reengage.domain.leads import Lead
from reengage.ports import Stores
from reengage.services.crm_sync import SyncReport, pull, push_all, push_leads
from reengage_cli.emulator.airtable_server import LocalAirtable
from tests.conftest import Emulator

BASE, TABLE = "appLocalBase0001", "tblLeads00000001"
NOW = datetime.now(UTC)
CHOICES = {
    "Response_Status": {"No Response", "Interested", "Rejected", "Converted", "Replied", "Unsubscribed", "Bounced"},
}


def sample_record(number: int, **fields: Any) -> dict[str, Any]:
    record = {
        "Name": f"Lead {number}",
        "Email": f"lead{number}@example.com",
        "Company": f"Company {number % 50}",
        "Engagement_Status": "Sent",
        "Email_Confidence_Level": "Real" if number % 3 else "Pattern",
        "Last_Contacted": (NOW - timedelta(days=3 + number % 10)).isoformat().replace("+00:00", "Z"),
        "Response_Status": "No Response",
    }
    record.update(fields)
    return record


@dataclass
class Sync:
    server: LocalAirtable
    stores: Stores
    table: AirtableTable
    state: DynamoSyncState
    mapping: FieldMapping
    emulator: Emulator

    def pull(self, **options: Any) -> SyncReport:
        options.setdefault("overlap", timedelta(0))
        return pull(
            self.stores,
            self.table,
            self.state,
            self.mapping,
            datetime.now(UTC),
            self.emulator.settings.policy,
            **options,
        )

    def record(self, record_id: str) -> dict[str, Any]:
        return self.server.fields_of(BASE, TABLE, record_id)


def _lead(sync: Sync, lead_id: str) -> Lead:
    lead = sync.stores.leads.get(lead_id)
    assert lead is not None
    return lead


@pytest.fixture
def airtable() -> Iterator[LocalAirtable]:
    server = LocalAirtable()
    server.create_table(BASE, TABLE, list(DEFAULT_FIELDS.values()), CHOICES)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _sync(server: LocalAirtable, aws: Emulator, mapping: FieldMapping | None = None, **table: Any) -> Sync:
    settings = aws.settings
    state = DynamoSyncState(boto3.client("dynamodb"), settings.send_ledger_table_name, f"airtable:{BASE}/{TABLE}")
    return Sync(
        server,
        wiring.stores(settings),
        AirtableTable(server.token, BASE, TABLE, api_url=server.url, **table),
        state,
        mapping or FieldMapping.from_dict({}),
        aws,
    )


@pytest.fixture
def sync(airtable: LocalAirtable, aws: Emulator) -> Sync:
    return _sync(airtable, aws)


def test_first_sync_of_1000_records_pages_under_the_limit(sync: Sync):
    # Given 1,000 records in Airtable
    ids = sync.server.add(BASE, TABLE, [sample_record(n) for n in range(1000)])
    # When the first pull runs
    report = sync.pull()
    # Then every record is a lead, read in pages of 100, never faster than Airtable allows
    assert (report.read, report.created, report.rejected) == (1000, 1000, [])
    assert sync.server.request_count == 10 and sync.server.rate_limited == 0
    assert sync.server.busiest_second <= 5
    for number in (0, 417, 999):
        lead = sync.stores.leads.get(ids[number])
        assert lead is not None
        assert (lead.email, lead.name) == (f"lead{number}@example.com", f"Lead {number}")
        assert lead.schedule_state == "due"  # eligible as a file import would make it
    assert report.cursor is not None and sync.state.cursor() == report.cursor


def test_incremental_sync_reads_only_what_changed(sync: Sync):
    ids = sync.server.add(BASE, TABLE, [sample_record(n) for n in range(30)])
    sync.pull()
    # Given two records edited in Airtable after the first pull, and one added
    sync.server.edit(BASE, TABLE, ids[3], {"Company": "Renamed Ltd"})
    sync.server.edit(BASE, TABLE, ids[7], {"Response_Status": "Interested"})
    new_id = sync.server.add(BASE, TABLE, [sample_record(100)])[0]
    report = sync.pull()
    # Then only those three are read, and their changes land
    assert (report.read, report.created, report.updated) == (3, 1, 2)
    assert sync.stores.leads.get(ids[3]).company == "Renamed Ltd"  # type: ignore[union-attr]
    stopped = sync.stores.leads.get(ids[7])
    assert stopped is not None and stopped.response_status == "Interested" and stopped.schedule_state is None
    assert sync.stores.leads.get(new_id) is not None
    # And a pull with nothing new reads nothing
    assert sync.pull().read == 0


def test_a_dry_run_writes_nothing_and_keeps_the_cursor(sync: Sync):
    sync.server.add(BASE, TABLE, [sample_record(n) for n in range(5)])
    report = sync.pull(dry_run=True)
    assert report.created == 5 and report.cursor is None
    assert sync.state.cursor() is None and sync.state.links() == {}
    assert sync.pull().created == 5


def test_conflicting_edits_follow_the_ownership_rules_and_airtable_is_corrected(sync: Sync):
    (record_id,) = sync.server.add(BASE, TABLE, [sample_record(1)])
    sync.pull()
    # Given reengage sent Followup_1 and then learned of a bounce
    lead = sync.stores.leads.get(record_id)
    assert lead is not None
    sent_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    history = [{"stage": "Followup_1", "at": sent_at, "outcome": "sent", "generator": "template"}]
    reengage_side = replace(
        lead, follow_up_stage="Followup_1", response_status="Bounced", suppressed=True, engagement_history=history
    )
    reengage_side.last_contacted = sent_at
    assert sync.stores.leads.put(reengage_side, previous=lead)
    # And meanwhile someone in Airtable renamed the lead, cleared the stage and set No Response,
    # with an older last contact
    sync.server.edit(
        BASE,
        TABLE,
        record_id,
        {
            "Name": "Renamed",
            "Follow_Up_Stage": "",
            "Response_Status": "No Response",
            "Last_Contacted": "2026-01-01T00:00:00Z",
        },
    )
    report = sync.pull()
    # Then the CRM's attribute wins, reengage's never move back
    stored = sync.stores.leads.get(record_id)
    assert stored is not None
    assert stored.name == "Renamed"
    assert (stored.follow_up_stage, stored.response_status) == ("Followup_1", "Bounced")
    assert stored.last_contacted is not None and stored.last_contacted.startswith(sent_at[:19])
    assert any("kept" in note for note in report.notes)
    # And the record in Airtable shows reengage's values again
    fields = sync.record(record_id)
    assert (fields["Follow_Up_Stage"], fields["Response_Status"]) == ("Followup_1", "Bounced")
    assert "Followup_1 sent" in fields["Reengage_History"]
    assert report.pushed == 1


def test_a_record_whose_email_changed_stays_the_same_lead(sync: Sync):
    (record_id,) = sync.server.add(BASE, TABLE, [sample_record(1)])
    sync.pull()
    sync.server.edit(BASE, TABLE, record_id, {"Email": "new.address@example.org"})
    report = sync.pull()
    assert (report.created, report.updated) == (0, 1)
    lead = sync.stores.leads.get(record_id)
    assert lead is not None and lead.email == "new.address@example.org"
    assert sync.stores.leads.find_by_email("lead1@example.com") is None
    assert sync.stores.leads.find_by_email("new.address@example.org") == record_id


def test_a_lead_imported_before_is_adopted_by_its_record(sync: Sync):
    from reengage.services.imports import import_rows

    row = {
        "email": "lead1@example.com",
        "engagement_status": "Sent",
        "last_contacted": sample_record(1)["Last_Contacted"],
    }
    import_rows(sync.stores, [(1, row)], datetime.now(UTC), sync.emulator.settings.policy)
    existing_id = sync.stores.leads.find_by_email("lead1@example.com")
    (record_id,) = sync.server.add(BASE, TABLE, [sample_record(1)])
    report = sync.pull()
    assert (report.created, report.updated) == (0, 1)
    assert sync.state.links() == {record_id: existing_id}
    assert sync.stores.leads.get(record_id) is None


def test_bad_records_are_reported_with_the_airtable_field_and_the_rest_land(sync: Sync):
    ids = sync.server.add(
        BASE,
        TABLE,
        [sample_record(1), sample_record(2, Email="not an address"), sample_record(3, Response_Status="Meeting")],
    )
    report = sync.pull()
    assert report.created == 2
    assert [(error.lead_id, error.field) for error in report.rejected] == [(ids[1], "Email (email)")]
    meeting = sync.stores.leads.get(ids[2])
    assert meeting is not None and meeting.response_status == "Meeting" and meeting.schedule_state is None


def test_rate_limited_requests_are_retried_until_they_pass(airtable: LocalAirtable, aws: Emulator):
    # Given a client that does not pace itself (another tool shares the base, say)
    sync = _sync(airtable, aws, requests_per_second=None, rate_limit_pause=0.3)
    ids = airtable.add(BASE, TABLE, [sample_record(n) for n in range(120)])
    sync.pull()
    leads = [replace(_lead(sync, rid), follow_up_stage="Followup_1") for rid in ids]
    # When 12 batches go out at once
    report = push_leads(sync.table, sync.state, sync.mapping, leads)
    # Then Airtable refused some with 429, pyairtable retried them, and every record was written
    assert airtable.rate_limited > 0
    assert report.pushed == 120 and report.push_failures == []
    assert all(fields.get("Follow_Up_Stage") == "Followup_1" for fields in airtable.all_fields(BASE, TABLE).values())


def test_the_paced_client_is_never_refused(sync: Sync):
    ids = sync.server.add(BASE, TABLE, [sample_record(n) for n in range(120)])
    sync.pull()
    leads = [replace(_lead(sync, rid), follow_up_stage="Followup_1") for rid in ids]
    report = push_leads(sync.table, sync.state, sync.mapping, leads)
    assert report.pushed == 120 and sync.server.rate_limited == 0 and sync.server.busiest_second <= 5


def test_deleted_and_invalid_records_are_reported_once_and_the_batch_still_lands(sync: Sync):
    ids = sync.server.add(BASE, TABLE, [sample_record(n) for n in range(10)])
    sync.pull()
    leads = {rid: sync.stores.leads.get(rid) for rid in ids}
    # Given one record deleted in Airtable and one lead whose status Airtable's select does not offer
    sync.server.delete(BASE, TABLE, ids[2])
    changed = [replace(lead, follow_up_stage="Followup_1") for lead in leads.values() if lead is not None]
    changed[5] = replace(changed[5], response_status="Complained")
    before = sync.server.request_count
    report = push_leads(sync.table, sync.state, sync.mapping, changed)
    # Then the other eight are written, the two are reported with why, and nothing is retried forever:
    # one batch request, then one request per record of the refused batch
    assert report.pushed == 8
    assert sorted((failure.record_id, failure.status) for failure in report.push_failures) == [
        (ids[2], 404),
        (ids[5], 422),
    ]
    assert "INVALID_MULTIPLE_CHOICE_OPTIONS" in next(f.reason for f in report.push_failures if f.status == 422)
    assert sync.server.request_count - before == 1 + 10
    assert sync.record(ids[0])["Follow_Up_Stage"] == "Followup_1"
    # And a pull leaves the lead of the deleted record alone
    assert sync.pull(full=True).read == 9
    assert sync.stores.leads.get(ids[2]) is not None


def test_an_unknown_field_in_the_mapping_is_refused_per_record_and_counted(airtable: LocalAirtable, aws: Emulator):
    sync = _sync(airtable, aws, mapping=FieldMapping.from_dict({"reengage_history": "Notes_That_Do_Not_Exist"}))
    ids = airtable.add(BASE, TABLE, [sample_record(n) for n in range(3)])
    sync.pull()
    leads = [sync.stores.leads.get(rid) for rid in ids]
    report = push_leads(sync.table, sync.state, sync.mapping, [lead for lead in leads if lead is not None])
    assert report.pushed == 0 and len(report.push_failures) == 3
    assert all(f.status == 422 and "UNKNOWN_FIELD_NAME" in f.reason for f in report.push_failures)


def test_push_all_writes_only_the_records_that_differ(sync: Sync):
    ids = sync.server.add(BASE, TABLE, [sample_record(n) for n in range(25)])
    sync.pull()
    lead = sync.stores.leads.get(ids[4])
    assert lead is not None and sync.stores.leads.put(replace(lead, follow_up_stage="Followup_1"), previous=lead)
    first = push_all(sync.stores, sync.table, sync.state, sync.mapping)
    assert first.read == 25 and first.pushed >= 1
    assert sync.record(ids[4])["Follow_Up_Stage"] == "Followup_1"
    assert push_all(sync.stores, sync.table, sync.state, sync.mapping).pushed == 0


def test_a_stop_made_in_airtable_is_never_overwritten_by_a_push(sync: Sync):
    ids = sync.server.add(BASE, TABLE, [sample_record(1), sample_record(2)])
    sync.pull()
    # Given someone marks both leads Replied in Airtable
    for record_id in ids:
        sync.server.edit(BASE, TABLE, record_id, {"Response_Status": "Replied"})
    # When reengage sends lead 1 a follow-up before the next pull, and an operator pushes everything
    lead = _lead(sync, ids[0])
    sent_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    sent = {"stage": "Followup_1", "at": sent_at, "outcome": "sent", "generator": "template"}
    followed = replace(
        lead, follow_up_stage="Followup_1", last_contacted=sent_at, engagement_history=[*lead.engagement_history, sent]
    )
    assert sync.stores.leads.put(followed, previous=lead)
    push_leads(sync.table, sync.state, sync.mapping, [followed])
    push_all(sync.stores, sync.table, sync.state, sync.mapping)
    # Then the CRM's stop is still there, next to what reengage did
    assert [sync.record(record_id)["Response_Status"] for record_id in ids] == ["Replied", "Replied"]
    assert sync.record(ids[0])["Follow_Up_Stage"] == "Followup_1"
    # And the next pull stops both sequences
    sync.pull()
    assert [_lead(sync, record_id).response_status for record_id in ids] == ["Replied", "Replied"]


def test_a_second_record_with_a_linked_address_is_rejected_not_merged_across_pulls(sync: Sync):
    # Given X pulled, then a later pull reads Y with X's address (another case) and another person
    (x,) = sync.server.add(BASE, TABLE, [sample_record(1, Email="dupx@dup.example", Name="Xavier")])
    sync.pull()
    (y,) = sync.server.add(
        BASE, TABLE, [sample_record(2, Email="DupX@dup.example", Name="Yolanda", Response_Status="Rejected")]
    )
    report = sync.pull()
    # Then Y is reported, naming X, and X's lead is untouched
    assert (report.created, report.updated) == (0, 0)
    assert [(error.lead_id, "same address as record " + x in error.reason) for error in report.rejected] == [(y, True)]
    lead = _lead(sync, x)
    assert (lead.name, lead.response_status) == ("Xavier", "No Response")
    assert y not in sync.state.links()


def test_a_lead_id_cell_must_be_text_naming_a_lead_no_other_record_has(sync: Sync):
    ids = sync.server.add(BASE, TABLE, [sample_record(1), sample_record(2)])
    sync.pull()
    # Given a typo pointing record 2 at record 1's lead, and records whose Lead_ID is a formula error or a lookup
    sync.server.edit(BASE, TABLE, ids[1], {"Lead_ID": ids[0], "Name": "Zed"})
    bad = sync.server.add(
        BASE,
        TABLE,
        [sample_record(3, Lead_ID={"error": "#ERROR!"}), sample_record(4, Lead_ID={"error": "#ERROR!"})]
        + [sample_record(5, Lead_ID=["lk1"])],
    )
    report = sync.pull()
    # Then each is a row error naming its record and the field, and nothing is overwritten
    assert sorted(error.lead_id for error in report.rejected) == sorted([ids[1], *bad])
    assert all(error.field.startswith("Lead_ID") for error in report.rejected)
    assert _lead(sync, ids[0]).name == "Lead 1"
    assert sync.stores.leads.get("{'error': '#ERROR!'}") is None and sync.stores.leads.get("['lk1']") is None


def test_airtable_keeps_milliseconds_and_a_synced_contact_is_not_rewritten(sync: Sync):
    (record_id,) = sync.server.add(BASE, TABLE, [sample_record(1)])
    sync.pull()
    lead = _lead(sync, record_id)
    sent_at = "2026-12-01T07:21:51.466611Z"
    sent = {"stage": "Followup_1", "at": sent_at, "outcome": "sent", "generator": "template"}
    followed = replace(
        lead, follow_up_stage="Followup_1", last_contacted=sent_at, engagement_history=[*lead.engagement_history, sent]
    )
    sync.emulator.settings.policy.reschedule(followed)
    assert sync.stores.leads.put(followed, previous=lead)
    push_leads(sync.table, sync.state, sync.mapping, [followed], previous={record_id: lead})
    # Then the local Airtable holds milliseconds, as Airtable does
    assert sync.record(record_id)["Last_Contacted"] == "2026-12-01T07:21:51.466Z"
    # And neither a pull nor a push finds anything to write back
    report = sync.pull()
    assert (report.notes, report.pushed, report.updated) == ([], 0, 0)
    assert push_all(sync.stores, sync.table, sync.state, sync.mapping).pushed == 0


def test_a_deleted_record_is_reported_with_its_record_id(sync: Sync):
    ids = sync.server.add(BASE, TABLE, [sample_record(n) for n in range(3)])
    sync.pull()
    sync.server.delete(BASE, TABLE, ids[1])
    for report in (sync.pull(full=True), push_all(sync.stores, sync.table, sync.state, sync.mapping)):
        assert [problem.split(":")[0] for problem in report.deleted] == [f"record {ids[1]} (lead {ids[1]})"]
    assert sync.stores.leads.get(ids[1]) is not None  # left as it is, for an operator to decide


def test_after_a_429_the_client_waits_out_airtables_lockout(aws: Emulator):
    from reengage.adapters.airtable import RATE_LIMIT_PAUSE

    assert RATE_LIMIT_PAUSE >= 30  # Airtable refuses every request for 30 s after a 429
    # Given a server that locks the base out after a 429 (a short penalty for the test)
    server = LocalAirtable(lockout=1.0)
    server.create_table(BASE, TABLE, list(DEFAULT_FIELDS.values()), CHOICES)
    with server:
        sync = _sync(server, aws, requests_per_second=None, rate_limit_pause=1.2)
        ids = server.add(BASE, TABLE, [sample_record(n) for n in range(60)])
        sync.pull()
        leads = [replace(_lead(sync, rid), follow_up_stage="Followup_1") for rid in ids]
        report = push_leads(sync.table, sync.state, sync.mapping, leads)
    # Then every record is written and no request came back during a lockout
    assert server.rate_limited > 0 and report.pushed == 60
    assert server.refused_while_locked == 0
