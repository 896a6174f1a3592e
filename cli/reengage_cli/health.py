"""`reengage health`: configuration, table, queues, SES identity and sending, AI secret, knowledge base."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from reengage import wiring
from reengage.adapters.parameters import load_knowledge_base
from reengage.domain.knowledge import KnowledgeBaseError
from reengage.settings import Settings
from reengage_cli.dlq import dead_letter_queue_url
from reengage_cli.drain import queue_depth

Check = tuple[str, bool, str]


def _check(name: str, probe: Callable[[], tuple[bool, str]]) -> Check:
    try:
        ok, detail = probe()
    except (ClientError, BotoCoreError, PynamoDBException) as error:
        return name, False, str(error).splitlines()[0]
    return name, ok, detail


def _table(dynamodb: Any, settings: Settings) -> tuple[bool, str]:
    description = dynamodb.describe_table(TableName=settings.leads_table_name)["Table"]
    indexes = {index["IndexName"] for index in description.get("GlobalSecondaryIndexes", [])}
    if "ScheduleShardIndex" not in indexes:
        return False, "ScheduleShardIndex is missing (the template creates it)"
    backups = dynamodb.describe_continuous_backups(TableName=settings.leads_table_name)
    recovery = backups["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
    pitr = recovery.get("PointInTimeRecoveryStatus", "DISABLED")
    detail = f"{description['TableStatus']}, {description['ItemCount']} items, point-in-time recovery {pitr}"
    return description["TableStatus"] == "ACTIVE" and pitr == "ENABLED", detail


def _dead_letters(sqs: Any, settings: Settings) -> tuple[bool, str]:
    url = dead_letter_queue_url(sqs, settings.queue_url)
    if url is None:
        return False, "the queue has no dead-letter queue (redrive policy)"
    depth = queue_depth(sqs, url, in_flight=True)
    return depth == 0, f"{depth} failed follow-up requests" + (" (reengage dlq list)" if depth else "")


def _identity(ses: Any, settings: Settings) -> tuple[bool, str]:
    domain = settings.sender_email.split("@")[1]
    attributes = ses.get_identity_verification_attributes(Identities=[settings.sender_email, domain])
    statuses = {key: value["VerificationStatus"] for key, value in attributes["VerificationAttributes"].items()}
    verified = [key for key, status in statuses.items() if status == "Success"]
    if verified:
        return True, f"{verified[0]} verified"
    return False, f"{settings.sender_email} is not verified in SES ({statuses or 'no identity'})"


def _sending(ses: Any, sesv2: Any) -> tuple[bool, str]:
    quota = ses.get_send_quota()
    detail = f"{quota['SentLast24Hours']:.0f} of {quota['Max24HourSend']:.0f} sent in 24 h"
    try:
        enabled = bool(sesv2.get_account().get("SendingEnabled", True))
    except (ClientError, BotoCoreError):
        return True, detail + " (this endpoint does not report whether sending is paused)"
    return enabled, ("sending enabled, " if enabled else "sending PAUSED by SES, ") + detail


def _authentication(sesv2: Any, settings: Settings) -> tuple[bool, str]:
    """DKIM and MAIL FROM of the sender's domain (the template's SenderDomainIdentity)."""
    domain = settings.sender_email.split("@")[1]
    try:
        identity = sesv2.get_email_identity(EmailIdentity=domain)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NotFoundException":
            raise
        return True, (
            f"no domain identity for {domain}: mail is DKIM-signed by amazonses.com only, not aligned with "
            "your From domain (deploy with SenderDomain; README: Before you deploy)"
        )
    dkim = identity.get("DkimAttributes", {}).get("Status", "NOT_STARTED")
    mail_from = identity.get("MailFromAttributes", {})
    detail = f"DKIM {dkim}"
    healthy = dkim == "SUCCESS"
    if mail_from.get("MailFromDomain"):
        status = mail_from.get("MailFromDomainStatus", "PENDING")
        detail += f", MAIL FROM {mail_from['MailFromDomain']} {status}"
        healthy = healthy and status == "SUCCESS"
    else:
        detail += ", no custom MAIL FROM (SPF is not aligned with the From domain)"
    if not healthy:
        detail += " (add the DNS records from the stack outputs)"
    return healthy, detail


def _ai(secrets: Any, settings: Settings) -> tuple[bool, str]:
    if not settings.openai_api_key_secret:
        return True, "no OpenAI key configured: follow-ups are written from templates"
    secrets.describe_secret(SecretId=settings.openai_api_key_secret)
    return True, f"model {settings.openai_model}, key secret {settings.openai_api_key_secret} present"


def _knowledge(settings: Settings) -> tuple[bool, str]:
    try:
        base = load_knowledge_base(settings.knowledge_base)
    except KnowledgeBaseError as error:
        return False, str(error)
    return True, f"{base.company}, {len(base.proof_points)} proof points"


def resource_checks(settings: Settings) -> list[Check]:
    dynamodb, sqs, ses = wiring.client("dynamodb"), wiring.client("sqs"), wiring.client("ses")
    return [
        _check("leads table", lambda: _table(dynamodb, settings)),
        _check("follow-up queue", lambda: (True, f"{queue_depth(sqs, settings.queue_url)} messages waiting")),
        _check("dead-letter queue", lambda: _dead_letters(sqs, settings)),
        _check("SES sender identity", lambda: _identity(ses, settings)),
        _check("SES sending", lambda: _sending(ses, wiring.client("sesv2"))),
        _check("SES DKIM and MAIL FROM", lambda: _authentication(wiring.client("sesv2"), settings)),
        _check("AI writer", lambda: _ai(wiring.client("secretsmanager"), settings)),
        _check("knowledge base", lambda: _knowledge(settings)),
    ]
