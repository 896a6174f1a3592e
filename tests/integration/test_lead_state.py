"""Lead state that holds up in real use (issue 10), each case over HTTP on the emulator:
re-imports, bad items, errors inside the lock window, writes racing a send, one person with two
records, oversized items, and lead ids SES tags could not carry."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3

from reengage import wiring
from reengage.adapters.leads_table import schedule_partition
from reengage.domain.clock import format_time, utc_now
from reengage.domain.leads import FollowUpPolicy, ResponseStatus, ScheduleState
from reengage.services.imports import import_rows
from reengage.services.responses import record_response
from reengage.services.upkeep import migrate
from reengage_cli.emulator import iam
from tests.conftest import Emulator, FakeLambdaContext, load_event, load_handler
from tests.integration.test_pipeline import as_sqs_event, lead_row, receive_all, seed


def schedule(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = load_handler("scheduler").lambda_handler(
        {**load_event("scheduled"), **(overrides or {})}, FakeLambdaContext()
    )
    return result


def send(aws: Emulator, sender: Any = None) -> dict[str, Any]:
    handler = sender or load_handler("sender")
    result: dict[str, Any] = handler.lambda_handler(
        as_sqs_event(receive_all(aws.settings.queue_url)), FakeLambdaContext()
    )
    return result


def recipients(aws: Emulator) -> list[str]:
    return [mail.to.split("<")[-1].rstrip(">").lower() for mail in aws.outbox()]


def ledger_item(aws: Emulator, lead_id: str, stage: str) -> dict[str, Any] | None:
    item = boto3.client("dynamodb").get_item(
        TableName=aws.settings.send_ledger_table_name,
        Key={"lead_id": {"S": lead_id}, "stage": {"S": stage}},
        ConsistentRead=True,
    )
    return item.get("Item")


def on_send_email(sender_module: Any, hook: Any) -> None:
    """Run `hook(params)` when the sender calls SES SendEmail: between the send lock and the record."""
    sender, _ = sender_module._deployment()

    def as_another_party(**params: Any) -> None:
        with iam.acting_as(None):  # a CRM sync or a reply: not the sender's role
            hook(**params)

    sender.mailer.client.meta.events.register("provide-client-params.sesv2.SendEmail", as_another_party)


# -- 1. a re-import never undoes what reengage learned ------------------------------
def test_a_reimport_does_not_revive_a_lead_that_said_remove_me_or_roll_back_its_contact(
    aws: Emulator, tmp_path: Path
) -> None:
    # Given two leads from a CRM export that both got Followup_1, and one of them answered "remove me"
    rows = [lead_row(1, response_status="No Response"), lead_row(2, response_status="No Response")]
    seed(aws, tmp_path, rows)
    schedule()
    send(aws)
    stores = wiring.stores(aws.settings)
    record_response(stores, "lead-001", ResponseStatus.REJECTED, "reply", utc_now(), FollowUpPolicy())
    # When the same export is imported again (No Response, the original last_contacted)
    report = import_rows(stores, enumerate(rows, start=1), utc_now(), FollowUpPolicy())
    assert report.rejected == []
    # Then the refusal stands, the contact reengage made stands, and a run right away claims nothing
    refused, waiting = stores.leads.get("lead-001"), stores.leads.get("lead-002")
    assert refused is not None and waiting is not None
    assert refused.response_status == ResponseStatus.REJECTED and refused.schedule_state is None
    assert waiting.follow_up_stage == "Followup_1" and waiting.last_contacted != rows[1]["last_contacted"]
    assert schedule()["marked"] == 0
    # And only `reengage mark ... "No Response"` revives a stopped lead, explicitly
    assert record_response(stores, "lead-001", ResponseStatus.NO_RESPONSE, "cli", utc_now(), FollowUpPolicy())


def test_a_crm_may_stop_a_sequence_and_unknown_upstream_values_are_kept_not_rejected(
    aws: Emulator, tmp_path: Path
) -> None:
    seed(aws, tmp_path, [lead_row(1), lead_row(2)])
    stores = wiring.stores(aws.settings)
    rows = [
        lead_row(1, response_status="Converted"),
        lead_row(2, engagement_status="Bounced Elsewhere", email_confidence_level="Verified-ish"),
    ]
    report = import_rows(stores, enumerate(rows, start=1), utc_now(), FollowUpPolicy())
    assert report.rejected == [] and report.updated == 2
    converted, odd = stores.leads.get("lead-001"), stores.leads.get("lead-002")
    assert converted is not None and converted.response_status == "Converted" and converted.schedule_state is None
    assert odd is not None and (odd.engagement_status, odd.email_confidence_level) == (
        "Bounced Elsewhere",
        "Verified-ish",
    )
    assert odd.schedule_state is None  # stored as given, never eligible
    assert any("lead-002" in note and "engagement_status" in note for note in report.notes)


# -- 2. one bad item never stops every send ------------------------------------------
def test_a_scheduled_lead_with_a_badly_typed_stage_or_email_is_set_aside_not_crashing_runs(
    aws: Emulator, tmp_path: Path
) -> None:
    seed(aws, tmp_path, [lead_row(1), lead_row(2), lead_row(3)])
    dynamodb = boto3.client("dynamodb")
    for lead_id, attribute in (("lead-002", "follow_up_stage"), ("lead-003", "email")):
        dynamodb.update_item(
            TableName=aws.settings.leads_table_name,
            Key={"id": {"S": lead_id}},
            UpdateExpression="SET #a = :n",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":n": {"N": "1"}},
        )
    # When the scheduler runs twice
    first = schedule()
    second = schedule()
    # Then the good lead is claimed, the bad ones are counted and set aside, and nothing crashed
    assert first["ok"] and first["marked"] == 1 and first["invalid"] == 2
    assert second["ok"] and second["invalid"] == 0
    send(aws)
    assert recipients(aws) == ["person1@example.com"]
    status = wiring.stores(aws.settings).schedule
    assert sorted(entry.lead_id for entry in status.entries(ScheduleState.INVALID, "9999")) == ["lead-002", "lead-003"]
    # And once the item is fixed, `reengage migrate` puts it back in the schedule
    dynamodb.update_item(
        TableName=aws.settings.leads_table_name,
        Key={"id": {"S": "lead-002"}},
        UpdateExpression="REMOVE follow_up_stage",
    )
    migrate(wiring.stores(aws.settings), FollowUpPolicy(), utc_now())
    assert schedule()["marked"] == 1
    send(aws)
    assert recipients(aws) == ["person1@example.com", "person2@example.com"]


# -- 3. nothing that can fail inside the lock window ---------------------------------
def test_a_secrets_outage_before_sending_keeps_the_first_follow_up(aws: Emulator, tmp_path: Path) -> None:
    import os

    # Given the link-signing secret cannot be read (its first read happens on a cold start)
    secrets = boto3.client("secretsmanager")
    secrets.delete_secret(SecretId=os.environ["UNSUBSCRIBE_KEY_SECRET"], RecoveryWindowInDays=7)
    seed(aws, tmp_path, [lead_row(1)])
    schedule()
    messages = receive_all(aws.settings.queue_url)
    failed = load_handler("sender").lambda_handler(as_sqs_event(messages), FakeLambdaContext())
    # Then the record is retried, the lead is still claimed and no ledger record says it may have gone out
    assert len(failed["batchItemFailures"]) == 1
    lead = wiring.stores(aws.settings).leads.get("lead-001")
    assert lead is not None and lead.schedule_state == ScheduleState.CLAIMED
    assert ledger_item(aws, "lead-001", "Followup_1") is None
    # When the secret is back, the retry sends Followup_1, not Followup_2 later
    secrets.restore_secret(SecretId=os.environ["UNSUBSCRIBE_KEY_SECRET"])
    assert load_handler("sender").lambda_handler(as_sqs_event(messages), FakeLambdaContext())["batchItemFailures"] == []
    sent = wiring.stores(aws.settings).leads.get("lead-001")
    assert sent is not None and sent.follow_up_stage == "Followup_1"
    assert recipients(aws) == ["person1@example.com"]


# -- 4. every write conditioned on what it read --------------------------------------
def test_a_whole_item_write_landing_between_lock_and_record_strands_nothing(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(1)])
    schedule()
    stores = wiring.stores(aws.settings)
    stale = stores.leads.get("lead-001")  # read by a CRM sync before the sender locks
    assert stale is not None
    outcomes: list[bool] = []

    def crm_write(**_: Any) -> None:
        renamed = replace(stale, name="Renamed by CRM", updated_at=format_time(utc_now()))
        outcomes.append(stores.leads.put(renamed, previous=stale))
        # And a fresh import of the same lead lands too (it re-reads, so it keeps the lock)
        report = import_rows(stores, [(1, lead_row(1, company="New Co"))], utc_now(), FollowUpPolicy())
        assert report.rejected == []

    sender = load_handler("sender")
    on_send_email(sender, crm_write)
    assert send(aws, sender)["batchItemFailures"] == []
    # Then the stale whole-item write was refused, the fresh one landed, and the send was recorded
    assert outcomes == [False]
    lead = stores.leads.get("lead-001")
    assert lead is not None
    assert (lead.follow_up_stage, lead.schedule_state, lead.company) == ("Followup_1", ScheduleState.DUE, "New Co")
    assert [entry["outcome"] for entry in lead.engagement_history] == ["sent"]
    # The ledger record made by the lock stays (it stops a second email for the stage)
    ledger = ledger_item(aws, "lead-001", "Followup_1")
    assert ledger is not None and ledger["state"]["S"] == "sending"


def test_a_reply_recorded_while_the_email_is_on_its_way_keeps_its_history_and_stops_the_sequence(
    aws: Emulator, tmp_path: Path
) -> None:
    seed(aws, tmp_path, [lead_row(1)])
    schedule()
    stores = wiring.stores(aws.settings)

    def reply(**_: Any) -> None:
        record_response(stores, "lead-001", ResponseStatus.INTERESTED, "reply", utc_now(), FollowUpPolicy())

    sender = load_handler("sender")
    on_send_email(sender, reply)
    send(aws, sender)
    lead = stores.leads.get("lead-001")
    assert lead is not None and lead.response_status == ResponseStatus.INTERESTED
    assert sorted(entry["outcome"] for entry in lead.engagement_history) == ["response", "sent"]
    assert lead.schedule_state is None  # no Followup_2 for a lead that answered


# -- 5. one person, one sequence -------------------------------------------------------
def test_two_records_of_one_person_get_each_stage_once_across_runs(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(1, email="Dana@Example.com", days=9), lead_row(2, email="dana@example.COM")])
    # Two runs on different days each claim one of the records (the per-run check cannot see the other)
    schedule({"limit": 1})
    send(aws)
    second = schedule()
    send(aws)
    assert recipients(aws) == ["dana@example.com"]
    assert second["marked"] <= 1
    other = wiring.stores(aws.settings).leads.get("lead-002")
    assert other is not None and other.schedule_state is None


def test_concurrent_schedulers_and_senders_never_mail_one_address_twice(aws: Emulator, tmp_path: Path) -> None:
    import threading

    people = [lead_row(n, email=f"Pat{n}@Example.com") for n in range(1, 11)]
    twins = [lead_row(n + 100, email=f"pat{n}@example.com") for n in range(1, 11)]
    seed(aws, tmp_path, people + twins)
    threads = [threading.Thread(target=schedule, kwargs={"overrides": {"limit": 7}}) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    messages = receive_all(aws.settings.queue_url)
    senders = [
        threading.Thread(target=load_handler("sender").lambda_handler, args=(as_sqs_event(part), FakeLambdaContext()))
        for part in (messages[::2], messages[1::2])
    ]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    schedule()
    send(aws)
    sent = recipients(aws)
    assert sorted(sent) == sorted({f"pat{n}@example.com" for n in range(1, 11)})


# -- 6. bounded items ----------------------------------------------------------------
def test_an_oversized_imported_history_is_rejected_with_its_row_and_field(aws: Emulator, tmp_path: Path) -> None:
    history = [{"stage": "Initial", "outcome": "note", "note": "x" * 1000} for _ in range(396)]
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps(lead_row(1, engagement_history=history)) + "\n" + json.dumps(lead_row(2)) + "\n")
    from reengage_cli.importer import import_file

    report = import_file(wiring.stores(aws.settings), path, utc_now(), FollowUpPolicy())
    assert report.created == 1
    (error,) = report.rejected
    assert (error.row, error.field) == (1, "engagement_history") and "too large" in error.reason


def test_a_lead_near_the_item_size_limit_is_recorded_with_its_history_trimmed(aws: Emulator) -> None:
    contacted = format_time(utc_now().replace(microsecond=0) - __import__("datetime").timedelta(days=9))
    history = {"L": [{"M": {"outcome": {"S": "note"}, "note": {"S": "y" * 3900}}} for _ in range(98)]}
    boto3.client("dynamodb").put_item(
        TableName=aws.settings.leads_table_name,
        Item={
            "id": {"S": "heavy"},
            "email": {"S": "heavy@example.com"},
            "engagement_status": {"S": "Sent"},
            "email_confidence_level": {"S": "Real"},
            "response_status": {"S": "No Response"},
            "last_contacted": {"S": contacted},
            "schedule_state": {"S": "due"},
            "schedule_part": {"S": schedule_partition("due", "heavy")},
            "schedule_at": {"S": contacted},
            "engagement_history": history,
        },
    )
    schedule()
    assert send(aws)["batchItemFailures"] == []
    lead = wiring.stores(aws.settings).leads.get("heavy")
    assert lead is not None and lead.follow_up_stage == "Followup_1" and lead.schedule_state == ScheduleState.DUE
    assert lead.engagement_history[-1]["outcome"] == "sent"
    assert any(entry.get("outcome") == "history_trimmed" for entry in lead.engagement_history)
    assert schedule()["ok"]


# -- 7. any lead id survives the trip through SES tags -----------------------------------
def test_a_bounce_reaches_a_lead_whose_long_id_has_characters_tags_do_not_allow(aws: Emulator, tmp_path: Path) -> None:
    lead_id = "crm:éü/" * 20  # 180 bytes of UTF-8: hex would need 360 characters, tags allow 256
    seed(aws, tmp_path, [lead_row(1, id=lead_id, email="bounce@example.com")])
    schedule()
    sender = load_handler("sender")
    sent_tags: list[dict[str, str]] = []
    on_send_email(sender, lambda params, **_: sent_tags.append({t["Name"]: t["Value"] for t in params["EmailTags"]}))
    send(aws, sender)
    (tags,) = sent_tags
    assert all(len(value) <= 256 for value in tags.values())
    # When SES reports a hard bounce carrying the tags it was given
    event = load_event("ses-bounce")
    notification = json.loads(event["Records"][0]["Sns"]["Message"])
    notification["mail"]["tags"] = {name: [value] for name, value in tags.items()}
    notification["mail"]["messageId"] = "unrelated-id"
    event["Records"][0]["Sns"]["Message"] = json.dumps(notification)
    assert load_handler("feedback").lambda_handler(event, FakeLambdaContext()) == {"hard_bounce": 1}
    # Then the address is suppressed and no Followup_2 goes out
    stores = wiring.stores(aws.settings)
    lead = stores.leads.get(lead_id)
    assert lead is not None and lead.response_status == ResponseStatus.BOUNCED and lead.schedule_state is None
    assert stores.suppression.is_suppressed("bounce@example.com")


def test_lead_ids_too_long_for_any_tag_are_refused_at_import(aws: Emulator) -> None:
    report = import_rows(wiring.stores(aws.settings), [(1, lead_row(1, id="é" * 120))], utc_now(), FollowUpPolicy())
    (error,) = report.rejected
    assert error.field == "id" and "bytes" in error.reason


# -- found from outside (README-only review of issue 10) -------------------------------------
def test_an_imported_unsubscribe_or_bounce_suppresses_the_address_for_the_persons_other_record(
    aws: Emulator, tmp_path: Path
) -> None:
    seed(
        aws,
        tmp_path,
        [
            lead_row(1, email="kim@example.com", response_status="Unsubscribed"),
            lead_row(2, email="KIM@Example.com"),
            lead_row(3, email="mo@example.com", response_status="Bounced"),
            lead_row(4, email="Mo@example.com"),
            lead_row(5),
        ],
    )
    assert schedule()["marked"] == 3
    send(aws)
    # Only the unrelated lead is mailed; the twins of the stopped records are stopped too
    assert recipients(aws) == ["person5@example.com"]
    stores = wiring.stores(aws.settings)
    for stopped, twin in (("lead-001", "lead-002"), ("lead-003", "lead-004")):
        lead, other = stores.leads.get(stopped), stores.leads.get(twin)
        assert lead is not None and other is not None
        assert lead.suppressed and lead.engagement_history[-1]["source"] == "import"
        assert other.suppressed and other.engagement_history[-1]["reason"] == "suppressed"
        assert not other.eligible_for_reengagement and other.schedule_state is None


def test_history_numbers_dynamodb_cannot_store_are_row_errors(aws: Emulator, tmp_path: Path) -> None:
    rows = [
        lead_row(1, engagement_history='[{"v": 1e400}]'),
        lead_row(2, engagement_history='[{"v": NaN}]'),
        lead_row(3, engagement_history='[{"v": 123456789012345678901234567890123456789012345}]'),
        lead_row(4, engagement_history='[{"v": 1.5, "n": 12345678901234567890}]'),
    ]
    report = import_rows(wiring.stores(aws.settings), enumerate(rows, start=1), utc_now(), FollowUpPolicy())
    assert [(error.row, error.field) for error in report.rejected] == [(n, "engagement_history") for n in (1, 2, 3)]
    assert "DynamoDB" in str(report.rejected[2]) and report.created == 1
    # And the status figures still add up afterwards
    assert load_handler("stats").lambda_handler(load_event("hourly-stats"), FakeLambdaContext())


def test_a_version_another_system_wrote_as_text_is_set_aside_and_counted(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(1), lead_row(2)])
    dynamodb = boto3.client("dynamodb")
    dynamodb.update_item(
        TableName=aws.settings.leads_table_name,
        Key={"id": {"S": "lead-001"}},
        UpdateExpression="SET version = :v",
        ExpressionAttributeValues={":v": {"S": "abc"}},
    )
    result = schedule()
    assert result["ok"] and result["marked"] == 1 and result["invalid"] == 1 and result["errors"] == 0
    entries = wiring.stores(aws.settings).schedule.entries(ScheduleState.INVALID, "9999")
    assert [entry.lead_id for entry in entries] == ["lead-001"]
    # `reengage status` counts it (the counters see an item nobody can read as a set-aside lead)
    from reengage_cli.commands.statistics import current_statistics

    assert current_statistics(aws.settings)["invalid_lead_data"] == 1
