"""`reengage demo`: the embedded default, scripted. An emulator in-process, the sample leads, one
campaign (a claimed lead converts before sending and is skipped), an unsubscribe and a reply that
stop their sequences, the statistics, and a second run that sends nothing twice."""

from __future__ import annotations

import argparse
import email.utils
import json
import os
import tempfile
import urllib.request
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from reengage import wiring
from reengage.domain.airtable_mapping import DEFAULT_FIELDS, PULLED
from reengage.domain.clock import format_time, parse_time, utc_now
from reengage.domain.leads import ScheduleState
from reengage.ports import Stores
from reengage.services.crm_sync import pull
from reengage.services.responses import handle_reply
from reengage.services.scheduler import CampaignRequest, run_scheduler
from reengage.settings import Settings
from reengage_cli.commands.campaign import send_queued
from reengage_cli.commands.crm import consume_stream_locally, print_events
from reengage_cli.commands.statistics import current_statistics
from reengage_cli.emulator import iam, provision
from reengage_cli.emulator.airtable_server import LocalAirtable
from reengage_cli.emulator.events import captured_events
from reengage_cli.emulator.outbox import outbox
from reengage_cli.emulator.server import LocalEmulator, use_endpoint
from reengage_cli.importer import import_file
from reengage_cli.output import EXIT_OK, print_campaign, print_email, print_statistics, say

SAMPLE_LEADS = Path(__file__).parent / "data" / "sample_leads.jsonl"
# The sample's times are written relative to this moment; the demo shifts them to now.
SAMPLE_REFERENCE_TIME = datetime.fromisoformat("2026-11-24T09:00:00+00:00")


def cmd_demo(args: argparse.Namespace) -> int:
    with LocalEmulator() as server, LocalAirtable() if args.airtable else nullcontext() as airtable:
        use_endpoint(server.endpoint, os.environ)
        for name in ("LEADS_TABLE_NAME", "QUEUE_URL"):
            os.environ.pop(name, None)
        say(f"Local AWS emulator on {server.endpoint}; provisioning from template.yaml")
        # The demo runs whenever it is started: send windows (each lead's local business hours)
        # are shown, not waited for; `reengage preview` and `run --now` try them (README "Send windows").
        overrides = {"SendWindow": "always"}
        if airtable is not None:
            say(f"Local Airtable-compatible server on {airtable.url} (base {DEMO_BASE}, table {DEMO_TABLE})")
            overrides.update(_airtable_parameters(airtable))
        os.environ.update(provision.provision(overrides).environment)
        settings = Settings.from_env(os.environ)
        stores = wiring.stores(settings)

        sample = _rebased_sample(Path(args.leads) if args.leads else SAMPLE_LEADS)
        if airtable is not None:
            record_ids = _seed_airtable(airtable, sample)
            with iam.acting_as(iam.registered("SyncFunction")):
                parts = wiring.airtable_sync(settings)
                assert parts is not None
                pulled = pull(stores, *parts, utc_now(), settings.policy)
            say(f"Pulled {pulled.created} leads from Airtable ({len(pulled.rejected)} problems)")
            for error in pulled.rejected:
                say(f"  {error}")
        else:
            report = import_file(stores, sample, utc_now(), settings.policy)
            say(f"Imported {report.created} sample leads ({report.rejected_rows} rejected)")
            for error in report.rejected:
                say(f"  {error}")
        say()
        print_statistics(current_statistics(settings))
        say()

        # A CRM marks one claimed lead as converted between selection and sending:
        # the sender must notice and skip it.
        queue = wiring.follow_up_queue(settings)
        with iam.acting_as(iam.registered("SchedulerFunction")):  # as the deployed function's role
            summary = run_scheduler(
                stores, queue, CampaignRequest(settings.days_between_followups), settings, utc_now()
            )
        converted = _convert_one_claimed(stores)
        if converted:
            say(f"(demo) {converted} replied and converted after being claimed: it must be skipped")
        drained = send_queued(settings, stores)
        print_campaign(summary, drained, dry_run=False)
        say()
        say("Messages sent:")
        for mail in outbox(server.endpoint):
            print_email(mail)
        say("-" * 72)
        say()
        _demo_feedback(settings, stores, server.endpoint)
        say()
        print_statistics(current_statistics(settings))
        with iam.acting_as(iam.registered("SchedulerFunction")):
            again = run_scheduler(stores, queue, CampaignRequest(settings.days_between_followups), settings, utc_now())
        say()
        say(f"Running the campaign again right away claims {again.marked} leads: nothing is sent twice.")
        if airtable is not None:
            _show_airtable(settings, server.endpoint, airtable, record_ids)
    return EXIT_OK


DEMO_BASE, DEMO_TABLE = "appReengageDemo01", "tblLeads"


def _airtable_parameters(airtable: LocalAirtable) -> dict[str, str]:
    """The local Airtable's table, and its token in the emulator's Secrets Manager (as in AWS)."""
    airtable.create_table(DEMO_BASE, DEMO_TABLE, list(DEFAULT_FIELDS.values()))
    secrets: Any = wiring.client("secretsmanager")
    arn = secrets.create_secret(Name="reengage-demo-airtable-token", SecretString=json.dumps({"token": airtable.token}))
    return {
        "AirtableTokenSecretArn": arn["ARN"],
        "AirtableBaseId": DEMO_BASE,
        "AirtableTableId": DEMO_TABLE,
        "AirtableApiUrl": airtable.url,
    }


def _seed_airtable(airtable: LocalAirtable, sample: Path) -> list[str]:
    """The sample leads typed into Airtable, under the default field names."""
    records = []
    for line in sample.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            records.append({DEFAULT_FIELDS[name]: value for name, value in row.items() if name in PULLED})
    return airtable.add(DEMO_BASE, DEMO_TABLE, records)


def _show_airtable(settings: Settings, endpoint: str, airtable: LocalAirtable, record_ids: list[str]) -> None:
    """SyncFunction's stream work (CRM events, push), then the records as the sales team sees them."""
    before = airtable.all_fields(DEMO_BASE, DEMO_TABLE)
    published, pushed = consume_stream_locally(settings)
    say()
    say(f"SyncFunction read the leads table's stream: {published} CRM events published, {pushed} records pushed.")
    after = airtable.all_fields(DEMO_BASE, DEMO_TABLE)
    changed = [rid for rid in record_ids if after.get(rid) != before.get(rid)]
    say(f"Airtable records with new values ({len(changed)}):")
    for record_id in changed:
        fields = after[record_id]
        last = (fields.get("Reengage_History") or "").splitlines()[-1:] or [""]
        stage, status = fields.get("Follow_Up_Stage") or "-", fields.get("Response_Status", "")
        say(
            f"  {fields.get('Name', record_id):<18} Follow_Up_Stage={stage:<10} Response_Status={status:<12}"
            f" Last_Contacted={fields.get('Last_Contacted', '')}"
        )
        if last[0]:
            say(f"  {'':<18} Reengage_History: {last[0]}")
    say()
    print_events([event for event in captured_events(endpoint) if event.source == "reengage"])


def _demo_feedback(settings: Settings, stores: Stores, endpoint: str) -> None:
    """One lead unsubscribes with the one-click link, another replies: both sequences stop."""
    mails = [mail for mail in outbox(endpoint) if "List-Unsubscribe" in mail.headers]
    if len(mails) < 2:
        return
    url = mails[0].headers["List-Unsubscribe"].split(">")[0].lstrip("<")
    request = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the local emulator
        say(f"(demo) {mails[0].to} clicked one-click unsubscribe: HTTP {response.status}, no redirect")
    replier = email.utils.parseaddr(mails[1].to)[1]
    lead_id = stores.leads.find_by_email(replier)
    lead = stores.leads.get(lead_id) if lead_id else None
    sent = [entry for entry in (lead.engagement_history if lead else []) if entry.get("message_id")]
    if lead is None or not sent:
        return
    reply = (
        f"From: {mails[1].to}\r\nTo: {settings.sender_email}\r\nSubject: Re: {mails[1].subject}\r\n"
        f"In-Reply-To: <{sent[-1]['message_id']}@email.amazonses.com>\r\n\r\n"
        "Thanks for following up. Sounds interesting - let's talk next week.\r\n"
    )
    outcome = handle_reply(reply.encode(), stores, utc_now(), settings.policy)
    say(f'(demo) {mails[1].to} replied "let\'s talk next week": {outcome}')
    for address in (email.utils.parseaddr(mails[0].to)[1], replier):
        found = stores.leads.find_by_email(address)
        stopped = stores.leads.get(found) if found else None
        if stopped is not None:
            state = "sequence stopped" if stopped.schedule_state is None else f"still {stopped.schedule_state}"
            say(f"       {stopped.name}: response status {stopped.response_status}, {state}")


def _rebased_sample(path: Path) -> Path:
    """The sample file with its times moved so 'now' keeps the same mix of due and not-due leads."""
    shift = utc_now() - SAMPLE_REFERENCE_TIME
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        for name in ("last_contacted", "created_at", "updated_at"):
            if row.get(name):
                row[name] = format_time(parse_time(row[name]) + shift)
        lines.append(json.dumps(row))
    handle = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8")
    with handle:
        handle.write("\n".join(lines) + "\n")
    return Path(handle.name)


def _convert_one_claimed(stores: Stores) -> str | None:
    for entry in stores.schedule.entries(ScheduleState.CLAIMED, "9999"):
        lead = stores.leads.get(entry.lead_id)
        if lead is None:
            continue
        stores.leads.put(replace(lead, response_status="Converted", updated_at=format_time(utc_now())), previous=lead)
        return lead.name or lead.id
    return None
