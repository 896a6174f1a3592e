"""The emulator enforces each function's role as template.yaml defines it (cli/reengage_cli/emulator/iam.py).

A permission missing from the template fails here, as it would in AWS, instead of after deploy.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from reengage_cli.emulator import iam
from tests.conftest import ROOT, Emulator, FakeLambdaContext, load_event, load_handler
from tests.integration.test_pipeline import as_sqs_event, lead_row, receive_all, seed

CONFIGURATION_SET_GRANT = (
    "            # SES also authorizes the configuration set a send names.\n"
    "            - Effect: Allow\n"
    "              Action: [ses:SendEmail, ses:SendRawEmail]\n"
    '              Resource: !Sub "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:'
    'configuration-set/${SesConfigurationSet}"\n'
)
SCHEDULER_QUEUE_GRANT = """            - Effect: Allow
              Action: sqs:SendMessage
              Resource: !GetAtt ReengagementQueue.Arn
      Events:
        Daily:"""


def test_a_function_may_do_only_what_its_role_allows(aws: Emulator) -> None:
    # Given the scheduler's role (Query on the schedule index, no Scan, no SES)
    scheduler = iam.registered("SchedulerFunction")
    assert scheduler is not None
    with iam.acting_as(scheduler):
        dynamodb, ses = boto3.client("dynamodb"), boto3.client("sesv2")
        # Then what the template grants works
        dynamodb.query(
            TableName=aws.settings.leads_table_name,
            IndexName="ScheduleShardIndex",
            KeyConditionExpression="schedule_part = :s",
            ExpressionAttributeValues={":s": {"S": "due#0"}},
        )
        # And what it does not grant is refused, naming the action and the resource
        with pytest.raises(ClientError, match=r"not authorized to perform: dynamodb:Scan on resource: .*table/"):
            dynamodb.scan(TableName=aws.settings.leads_table_name)
        with pytest.raises(ClientError, match="AccessDenied"):
            ses.send_email(
                FromEmailAddress=aws.settings.sender_email,
                Destination={"ToAddresses": ["a@example.com"]},
                Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}},
            )
    # While the operator's own credentials (the account's administrator) are not limited
    boto3.client("dynamodb").scan(TableName=aws.settings.leads_table_name)
    assert len(iam.denials()) == 2
    iam.reset_denials()


def test_the_sender_may_not_send_as_another_address(aws: Emulator) -> None:
    # ses:FromAddress is a condition the emulator evaluates (StringEquals)
    boto3.client("ses").verify_email_identity(EmailAddress="someone-else@example.com")
    with iam.acting_as(iam.registered("SenderFunction")), pytest.raises(ClientError, match="ses:SendEmail"):
        boto3.client("sesv2").send_email(
            FromEmailAddress="someone-else@example.com",
            Destination={"ToAddresses": ["a@example.com"]},
            Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}},
        )
    iam.reset_denials()


# The scheduler's claims run in its 16 claim threads: they must be refused as the function's too.
SCHEDULER_CLAIM_GRANT = """              Action: [dynamodb:GetItem, dynamodb:UpdateItem]
              Resource: !GetAtt LeadsTable.Arn
            - Effect: Allow
              Action: [dynamodb:GetItem, dynamodb:BatchGetItem, dynamodb:UpdateItem]
              Resource: !GetAtt SendLedgerTable.Arn"""


@pytest.mark.parametrize(
    ("grant", "refused"),
    [
        (CONFIGURATION_SET_GRANT, "ses:SendEmail on resource: arn:aws:ses:us-east-1:123456789012:configuration-set/"),
        (SCHEDULER_QUEUE_GRANT, "sqs:SendMessage on resource: arn:aws:sqs:"),
        (SCHEDULER_CLAIM_GRANT, "dynamodb:UpdateItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/"),
    ],
    ids=["sender-without-configuration-set", "scheduler-without-queue", "scheduler-claim-threads-without-update"],
)
def test_a_permission_removed_from_the_template_fails_the_pipeline(
    grant: str,
    refused: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
    request: pytest.FixtureRequest,
) -> None:
    # Given a copy of the template with one grant removed
    text = (ROOT / "template.yaml").read_text()
    assert text.count(grant) == 1
    copy = tmp_path / "template.yaml"
    if "Daily:" in grant:
        without = "      Events:\n        Daily:"
    elif grant == SCHEDULER_CLAIM_GRANT:  # UpdateItem on the leads table taken out, GetItem kept
        without = grant.replace("dynamodb:GetItem, dynamodb:UpdateItem]", "dynamodb:GetItem]", 1)
    else:
        without = ""
    copy.write_text(text.replace(grant, without))
    monkeypatch.setenv("REENGAGE_TEMPLATE", str(copy))
    aws: Emulator = request.getfixturevalue("aws")
    seed(aws, tmp_path, [lead_row(1)])
    # When a campaign runs
    load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    messages = receive_all(aws.settings.queue_url)
    if messages:
        load_handler("sender").lambda_handler(as_sqs_event(messages), FakeLambdaContext())
    # Then nothing is sent, and the emulator says which permission was missing
    assert aws.outbox() == []
    assert any(refused in denial for denial in iam.denials()), iam.denials()
    iam.reset_denials()
