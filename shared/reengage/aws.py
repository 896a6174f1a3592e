"""Builds the real adapters. Every client honours AWS_ENDPOINT_URL(_<SERVICE>) through botocore,
so the same code talks to AWS or to the local emulator; nothing here knows which."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from reengage.follow_up_queue import SqsFollowUpQueue
from reengage.lead_store import DynamoLeadStore
from reengage.settings import Settings

_DEFAULT = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 3})
# No automatic retries for SES: a retried SendEmail after a lost answer could send twice.
# Throttling is retried by SQS instead, with the record back on the queue.
_SES = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "total_max_attempts": 1})


def client(service: str, config: Config = _DEFAULT) -> Any:
    return boto3.client(service, config=config)  # type: ignore[call-overload]


def lead_store(settings: Settings) -> DynamoLeadStore:
    return DynamoLeadStore(settings.leads_table_name)


def follow_up_queue(settings: Settings) -> SqsFollowUpQueue:
    return SqsFollowUpQueue(client("sqs"), settings.queue_url)


def ses_mailer(settings: Settings) -> Any:
    from reengage.mailer import SesMailer  # only the sender sends mail

    return SesMailer(client("sesv2", _SES), settings.sender_email, settings.sender_name)
