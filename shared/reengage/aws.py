"""Builds the real adapters. Every client honours AWS_ENDPOINT_URL(_<SERVICE>) through botocore,
so the same code talks to AWS or to the local emulator; nothing here knows which.

Clients come from a plain botocore session (boto3 would add ~50 ms of s3transfer imports
to every cold start) and are created on first use, not at import.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config

from reengage.follow_up_queue import SqsFollowUpQueue
from reengage.knowledge import load_knowledge_base
from reengage.lead_store import DynamoLeadStore
from reengage.leads import ResponseStatus
from reengage.messages import TemplateWriter
from reengage.ports import MessageWriter
from reengage.settings import Settings
from reengage.stats_store import DynamoStatsStore
from reengage.unsubscribe import UnsubscribeLinks

_DEFAULT = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 3})
# No automatic retries for SES: a retried SendEmail after a lost answer could send twice.
# Throttling is retried by SQS instead, with the record back on the queue.
_SES = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "total_max_attempts": 1})


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


_CREATE_LOCK = threading.Lock()


def client(service: str, config: Config = _DEFAULT) -> Any:
    # A botocore session is not safe for concurrent client creation.
    with _CREATE_LOCK:
        return _session().create_client(service, config=config)


class LazyClient:
    """A client built on first use, so importing a handler costs no service-model loading."""

    def __init__(self, service: str, config: Config = _DEFAULT) -> None:
        self._service = service
        self._config = config
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = client(self._service, self._config)
        return getattr(self._client, name)


def lead_store(settings: Settings) -> DynamoLeadStore:
    return DynamoLeadStore(settings.leads_table_name, settings.send_ledger_table_name)


def stats_store(settings: Settings) -> DynamoStatsStore:
    return DynamoStatsStore(LazyClient("dynamodb"), settings.send_ledger_table_name)


def follow_up_queue(settings: Settings) -> SqsFollowUpQueue:
    return SqsFollowUpQueue(LazyClient("sqs"), settings.queue_url)


def secret_text(secret_name: str, field: str) -> str:
    """A secret from Secrets Manager (a plain string, or JSON with `field`), cached 5 minutes."""
    from aws_lambda_powertools.utilities import parameters  # only when a secret is configured: imports boto3

    raw = parameters.get_secret(secret_name, max_age=300)
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(data, dict) and isinstance(data.get(field), str):
        return str(data[field]).strip()
    return text.strip()


def unsubscribe_links(settings: Settings) -> UnsubscribeLinks | None:
    """Signed one-click links, when the deployment has an unsubscribe endpoint."""
    if not settings.unsubscribe_url:
        return None
    return UnsubscribeLinks(
        settings.unsubscribe_url,
        key=lambda: secret_text(settings.unsubscribe_key_secret, "key").encode(),
        mailto=settings.unsubscribe_mailto,
    )


def message_writer(settings: Settings) -> MessageWriter:
    """The AI writer when a key is configured, else the template writer."""
    knowledge = load_knowledge_base(settings.knowledge_base)
    if not settings.openai_api_key_secret:
        return TemplateWriter(knowledge)
    from reengage.ai_writer import AiWriter

    return AiWriter(
        knowledge,
        settings.openai_model,
        api_key=lambda: secret_text(settings.openai_api_key_secret, "api_key"),
        base_url=settings.openai_base_url,
        timeout_seconds=settings.openai_timeout_seconds,
    )


def reply_classifier(settings: Settings) -> Callable[[str], ResponseStatus]:
    """The model when a key is configured (keywords if it fails), else the keyword rules."""
    from reengage.ai_writer import AiReplyClassifier, AiWriter
    from reengage.replies import classify  # only the reply function classifies

    writer = message_writer(settings)
    return AiReplyClassifier(writer, classify) if isinstance(writer, AiWriter) else classify


def ses_mailer(settings: Settings) -> Any:
    from reengage.mailer import SesMailer  # only the sender sends mail

    return SesMailer(
        LazyClient("sesv2", _SES),
        settings.sender_email,
        settings.sender_name,
        settings.ses_configuration_set,
        settings.reply_to,
    )
