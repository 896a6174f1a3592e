"""SyncFunction as deployed: its own role (the emulator enforces template.yaml), the token from
Secrets Manager, pyairtable against the local Airtable server, CRM events captured by the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from reengage import wiring
from reengage.domain.airtable_mapping import DEFAULT_FIELDS
from reengage.domain.leads import Lead, ResponseStatus
from reengage.ports import TransientError
from reengage.services.responses import record_response
from reengage_cli.emulator import iam, provision
from reengage_cli.emulator.airtable_server import LocalAirtable
from reengage_cli.emulator.events import captured_events
from tests.conftest import ROOT, TIMELESS, Emulator, FakeLambdaContext, load_event, load_handler
from tests.infra.test_dashboard import stream_event
from tests.integration.test_airtable_sync import BASE, CHOICES, TABLE, sample_record


@pytest.fixture
def airtable() -> Iterator[LocalAirtable]:
    server = LocalAirtable()
    server.create_table(BASE, TABLE, list(DEFAULT_FIELDS.values()), CHOICES)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def synced(aws: Emulator, airtable: LocalAirtable) -> Emulator:
    """The stack re-provisioned with the Airtable parameters (the token in Secrets Manager)."""
    arn = boto3.client("secretsmanager").create_secret(
        Name="airtable-token", SecretString=json.dumps({"token": airtable.token})
    )["ARN"]
    overrides = {
        **TIMELESS,
        "AirtableTokenSecretArn": arn,
        "AirtableBaseId": BASE,
        "AirtableTableId": TABLE,
        "AirtableApiUrl": airtable.url,
    }
    provisioned = provision.provision(overrides)
    os.environ.update(provisioned.environment)
    return replace(aws, environment=provisioned.environment)


def test_without_a_token_the_sync_is_off_and_pyairtable_is_never_imported(aws: Emulator):
    # Given the default stack (no Airtable token): the schedule's invocation does nothing
    assert load_handler("sync").lambda_handler(load_event("crm-sync"), FakeLambdaContext()) == {"sync": "off"}
    # And in a fresh process, neither that nor the other functions' cold paths import the client
    script = (
        "import importlib.util, sys\n"
        "for name in ('sync', 'scheduler', 'sender', 'counters'):\n"
        "    spec = importlib.util.spec_from_file_location(name, f'functions/{name}/app.py')\n"
        "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "from reengage import wiring\n"
        "from reengage.settings import Settings\n"
        "import os\n"
        "assert wiring.airtable_sync(Settings.from_env(os.environ)) is None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyairtable', 'requests')))\n"
    )
    env = {**os.environ, "AIRTABLE_TOKEN_SECRET": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_scheduled_pull_as_the_function_role(synced: Emulator, airtable: LocalAirtable):
    ids = airtable.add(BASE, TABLE, [sample_record(n) for n in range(25)])
    answer = load_handler("sync").lambda_handler(load_event("crm-sync"), FakeLambdaContext())
    assert answer["created"] == 25 and answer["rejected"] == 0
    stores = wiring.stores(wiring_settings())
    assert stores.leads.get(ids[0]) is not None


def wiring_settings():  # the environment the provisioned stack gives the functions
    from reengage.settings import Settings

    return Settings.from_env(os.environ)


def test_stream_publishes_crm_events_once_per_key_and_pushes_to_airtable(synced: Emulator, airtable: LocalAirtable):
    ids = airtable.add(BASE, TABLE, [sample_record(n) for n in range(3)])
    handler = load_handler("sync")
    handler.lambda_handler(load_event("crm-sync"), FakeLambdaContext())
    settings = wiring_settings()
    stores = wiring.stores(settings)
    now = datetime.now(UTC)
    # Given reengage sends lead 0 its first follow-up, lead 1 replies interested, lead 2 bounces
    lead = stores.leads.get(ids[0])
    assert lead is not None
    sent_at = (now - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    sent = {"stage": "Followup_1", "at": sent_at, "outcome": "sent", "message_id": "ses-1", "generator": "template"}
    assert stores.leads.put(
        replace(
            lead,
            follow_up_stage="Followup_1",
            last_contacted=sent_at,
            engagement_history=[*lead.engagement_history, sent],
        ),
        previous=lead,
    )
    record_response(stores, ids[1], ResponseStatus.INTERESTED, "reply", now, settings.policy)
    record_response(stores, ids[2], ResponseStatus.BOUNCED, "ses", now, settings.policy)
    # When SyncFunction receives the stream (twice: the event source redelivers)
    event = stream_event(synced)
    first = handler.lambda_handler(event, FakeLambdaContext())
    handler.lambda_handler(event, FakeLambdaContext())
    # Then the events are on the bus, a redelivery carrying the same idempotency keys
    captured = [e for e in captured_events(synced.endpoint) if e.source == "reengage"]
    kinds = sorted({(e.detail_type, e.detail["lead_id"]) for e in captured})
    assert ("FollowUpSent", ids[0]) in kinds
    assert ("LeadResponded", ids[1]) in kinds
    assert ("LeadSuppressed", ids[2]) in kinds
    assert ("SequenceFinished", ids[2]) in kinds
    keys = [e.detail["idempotency_key"] for e in captured]
    assert len(keys) == 2 * len(set(keys)) and first["events"] == len(set(keys))
    assert all(e.bus == settings.crm_event_bus for e in captured)
    # And Airtable shows what reengage knows
    assert airtable.fields_of(BASE, TABLE, ids[0])["Follow_Up_Stage"] == "Followup_1"
    assert "Followup_1 sent" in airtable.fields_of(BASE, TABLE, ids[0])["Reengage_History"]
    assert airtable.fields_of(BASE, TABLE, ids[1])["Response_Status"] == "Interested"
    assert airtable.fields_of(BASE, TABLE, ids[2])["Response_Status"] == "Bounced"


PUT_EVENTS_GRANT = """            - Effect: Allow
              Action: events:PutEvents
              Resource: !GetAtt CrmEventBus.Arn
"""


def test_without_put_events_in_the_template_the_events_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # Given a copy of the template without SyncFunction's PutEvents grant
    text = (ROOT / "template.yaml").read_text()
    assert text.count(PUT_EVENTS_GRANT) == 1
    copy = tmp_path / "template.yaml"
    copy.write_text(text.replace(PUT_EVENTS_GRANT, ""))
    monkeypatch.setenv("REENGAGE_TEMPLATE", str(copy))
    aws: Emulator = request.getfixturevalue("aws")
    stores = wiring.stores(aws.settings)
    now = datetime.now(UTC)
    lead = Lead(id="l-1", email="a@example.com", engagement_status="Sent", email_confidence_level="Real")
    lead.last_contacted = (now - timedelta(days=1)).isoformat()
    assert stores.leads.put(lead)
    record_response(stores, "l-1", ResponseStatus.CONVERTED, "crm", now, aws.settings.policy)
    # When SyncFunction gets the change, its events are refused (the batch fails and is retried)
    with pytest.raises(TransientError):
        load_handler("sync").lambda_handler(stream_event(aws), FakeLambdaContext())
    # And the emulator names the missing permission
    refused = "events:PutEvents on resource: arn:aws:events:us-east-1:123456789012:event-bus/reengage-local-crm"
    assert any(refused in denial for denial in iam.denials()), iam.denials()
    iam.reset_denials()


def test_a_bad_airtable_setting_never_stops_the_crm_events(
    synced: Emulator, airtable: LocalAirtable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    ids = airtable.add(BASE, TABLE, [sample_record(n) for n in range(2)])
    handler = load_handler("sync")
    handler.lambda_handler(load_event("crm-sync"), FakeLambdaContext())
    settings = wiring_settings()
    record_response(
        wiring.stores(settings), ids[0], ResponseStatus.INTERESTED, "reply", datetime.now(UTC), settings.policy
    )
    event = stream_event(synced)
    # Given a mapping that is not JSON (a deleted token secret fails the same way)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    monkeypatch.setenv("AIRTABLE_MAPPING", str(bad))
    handler = load_handler("sync")
    # When the stream arrives, the batch does not fail: the events are published
    result = handler.lambda_handler(event, FakeLambdaContext())
    captured = [e for e in captured_events(synced.endpoint) if e.source == "reengage"]
    assert ("LeadResponded", ids[0]) in {(e.detail_type, e.detail["lead_id"]) for e in captured}
    assert result["events"] >= 1
    # And the configuration error is reported on its own, nothing pushed
    assert result["pushed"] == 0 and "not JSON" in result["config_error"]
    assert airtable.fields_of(BASE, TABLE, ids[0])["Response_Status"] == "No Response"


@pytest.mark.parametrize(
    ("parameter", "good", "bad"),
    [
        ("AirtableFieldMappingParameter", ["", "/reengage/airtable-mapping"], ["reengage/airtable-mapping", "/a b"]),
        (
            "AirtableTokenSecretArn",
            ["", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:airtable-token-AbCdEf"],
            ["airtable-token", "arn:aws:ssm:eu-west-1:123456789012:parameter/x"],
        ),
    ],
)
def test_the_airtable_parameters_refuse_values_that_build_a_wrong_arn(parameter: str, good: list[str], bad: list[str]):
    import re

    from tests.conftest import TEMPLATE

    pattern = TEMPLATE["Parameters"][parameter]["AllowedPattern"]  # CloudFormation matches the whole value
    assert all(re.fullmatch(pattern, value) for value in good)
    assert not any(re.fullmatch(pattern, value) for value in bad)
