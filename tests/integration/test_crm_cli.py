"""`reengage sync airtable` and `reengage events`, run as a user runs them, against the emulator and
the local Airtable server (the CLI acts as SyncFunction's role there)."""

from __future__ import annotations

import os
from pathlib import Path

from reengage import wiring
from reengage.settings import Settings
from reengage_cli.emulator.airtable_server import LocalAirtable
from tests.conftest import Emulator
from tests.integration.test_airtable_sync import BASE, TABLE, sample_record
from tests.integration.test_cli import reengage
from tests.integration.test_crm_sync_function import airtable, synced  # noqa: F401 - fixtures

__all__ = ["airtable", "synced"]


def test_sync_says_what_is_missing(aws: Emulator, tmp_path: Path) -> None:
    result = reengage("sync", "airtable")
    assert result.returncode == 2 and "--pull" in result.stderr
    off = reengage("sync", "airtable", "--pull", env={**os.environ, "AIRTABLE_TOKEN_SECRET": ""})
    assert off.returncode == 2 and "the Airtable sync is off: set AIRTABLE_TOKEN_SECRET" in off.stderr
    assert "Traceback" not in off.stderr
    mapping = tmp_path / "mapping.json"
    mapping.write_text('{"emial": "Work Email"}')
    configured = {"AIRTABLE_TOKEN_SECRET": "t", "AIRTABLE_BASE_ID": BASE, "AIRTABLE_TABLE_ID": TABLE}
    bad = reengage("sync", "airtable", "--pull", env={**os.environ, **configured, "AIRTABLE_MAPPING": str(mapping)})
    assert bad.returncode == 2, bad.stderr
    assert f"reengage: error: field mapping {mapping}: 'emial' is not a lead attribute" in bad.stderr


def test_pull_dry_run_pull_events_and_push(synced: Emulator, airtable: LocalAirtable) -> None:  # noqa: F811
    ids = airtable.add(BASE, TABLE, [sample_record(1), sample_record(2), sample_record(3, Email="nope")])
    stores = wiring.stores(Settings.from_env(os.environ))
    # A dry run reports and writes nothing
    dry = reengage("sync", "airtable", "--pull", "--dry-run")
    assert dry.returncode == 1, dry.stderr
    assert "Read 3 changed records: 2 new leads" in dry.stdout
    assert f"record {ids[2]}" not in dry.stdout and f"lead {ids[2]}" in dry.stdout and "Email (email)" in dry.stdout
    assert stores.leads.get(ids[0]) is None
    # The pull lands the valid records and reports the bad one
    pulled = reengage("sync", "airtable", "--pull")
    assert pulled.returncode == 1 and "2 new leads" in pulled.stdout and "1 records rejected" in pulled.stdout
    assert stores.leads.get(ids[0]) is not None
    # A response recorded in reengage becomes a CRM event and reaches Airtable
    assert reengage("mark", ids[0], "Interested").returncode == 0
    events = reengage("events")
    assert events.returncode == 0, events.stderr
    assert "LeadResponded" in events.stdout and "SequenceFinished" in events.stdout
    assert airtable.fields_of(BASE, TABLE, ids[0])["Response_Status"] == "Interested"
    # Nothing left to push
    pushed = reengage("sync", "airtable", "--push")
    assert pushed.returncode == 0, pushed.stderr
    assert "Wrote 0 records back to Airtable (1 records without a lead)" in pushed.stdout


def test_demo_with_airtable_shows_the_records_new_values_and_the_events(restore_environ: None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "LEADS_", "QUEUE_"))}
    demo = reengage("demo", "--airtable", env=env)
    assert demo.returncode == 0, demo.stderr
    assert "Pulled 30 leads from Airtable (0 problems)" in demo.stdout
    assert "nothing is sent twice" in demo.stdout
    shown = demo.stdout.split("Airtable records with new values", 1)[1]
    assert "Follow_Up_Stage=Followup_2" in shown and "Response_Status=Unsubscribed" in shown
    assert "Reengage_History:" in shown and "Followup_1 sent (template)" in shown
    for kind in ("FollowUpSent", "LeadResponded", "LeadSuppressed", "SequenceFinished"):
        assert kind in shown
