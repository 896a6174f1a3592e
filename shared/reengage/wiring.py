"""Builds the real adapters from settings. Every client honours AWS_ENDPOINT_URL(_<SERVICE>) through
botocore, so the same code talks to AWS or to the local emulator; nothing here knows which.

Clients come from a plain botocore session (boto3 would add ~50 ms of s3transfer imports
to every cold start) and are created on first use, not at import.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.config import Config

from reengage.adapters.counters import DynamoCounters
from reengage.adapters.dynamo_client import share_client
from reengage.adapters.leads_table import DynamoLeads, DynamoSchedule, LeadModel
from reengage.adapters.parameters import load_field_mapping, load_knowledge_base, secret_text
from reengage.adapters.send_ledger import (
    AddressModel,
    DailySendsModel,
    DynamoQuota,
    DynamoSendLedger,
    DynamoSuppression,
    LedgerModel,
    SuppressionModel,
)
from reengage.adapters.send_lock import DynamoSendLock
from reengage.adapters.sqs_queue import SqsFollowUpQueue
from reengage.domain.leads import ResponseStatus
from reengage.domain.messages import TemplateWriter
from reengage.domain.unsubscribe import UnsubscribeLinks
from reengage.ports import CrmTable, EventBus, Mailer, MessageWriter, Stores, SyncState
from reengage.settings import Settings

if TYPE_CHECKING:  # the Airtable sync's alone
    from reengage.domain.airtable_mapping import FieldMapping

_DEFAULT = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 3})
# DynamoDB through pynamodb: its own client settings (no parameter validation), and a connection pool
# for the scheduler's claim threads and the import's writers.
_DYNAMODB = Config(
    connect_timeout=5,
    read_timeout=15,
    retries={"mode": "standard", "max_attempts": 3},
    parameter_validation=False,
    max_pool_connections=32,
)
# No automatic retries for SES: a retried SendEmail after a lost answer could send twice.
# Throttling is retried by SQS instead, with the record back on the queue.
_SES = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "total_max_attempts": 1})


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


_CREATE_LOCK = threading.Lock()
DYNAMODB_MODELS = (LeadModel, LedgerModel, DailySendsModel, SuppressionModel, AddressModel)


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


def stores(settings: Settings) -> Stores:
    leads_table, ledger_table = settings.leads_table_name, settings.send_ledger_table_name
    shards = settings.schedule_shards
    send_lock = DynamoSendLock(leads_table, ledger_table, shards)
    built = Stores(
        leads=DynamoLeads(leads_table, schedule_shards=shards),
        schedule=DynamoSchedule(leads_table, schedule_shards=shards),
        send_lock=send_lock,
        ledger=DynamoSendLedger(ledger_table),
        quota=DynamoQuota(ledger_table),
        suppression=DynamoSuppression(ledger_table),
    )
    # One DynamoDB client for every model and the send lock's transactions, built on first use.
    share_client(LazyClient("dynamodb", _DYNAMODB), DYNAMODB_MODELS, [send_lock.connection])
    return built


def counters(settings: Settings) -> DynamoCounters:
    return DynamoCounters(LazyClient("dynamodb"), settings.send_ledger_table_name)


def follow_up_queue(settings: Settings) -> SqsFollowUpQueue:
    return SqsFollowUpQueue(LazyClient("sqs"), settings.queue_url)


def unsubscribe_links(settings: Settings) -> UnsubscribeLinks | None:
    """Signed one-click links, when the deployment has an unsubscribe endpoint."""
    if not settings.unsubscribe_url:
        return None
    return UnsubscribeLinks(
        settings.unsubscribe_url, key=lambda: secret_text(settings.unsubscribe_key_secret, "key").encode()
    )


def unsubscribe_key(settings: Settings) -> bytes:
    return secret_text(settings.unsubscribe_key_secret, "key").encode()


def reply_key(settings: Settings) -> bytes:
    """The key our Message-IDs are signed with (the link-signing secret), or b"" when none is set:
    then no reply matches by our own Message-ID."""
    return unsubscribe_key(settings) if settings.unsubscribe_key_secret else b""


def message_writer(settings: Settings) -> MessageWriter:
    """The AI writer when a key is configured, else the template writer."""
    knowledge = load_knowledge_base(settings.knowledge_base)
    if not settings.openai_api_key_secret:
        return TemplateWriter(knowledge)
    from reengage.adapters.openai_writer import AiWriter  # openai only where a key is configured

    return AiWriter(
        knowledge,
        settings.openai_model,
        api_key=lambda: secret_text(settings.openai_api_key_secret, "api_key"),
        base_url=settings.openai_base_url,
        timeout_seconds=settings.openai_timeout_seconds,
    )


def reply_classifier(settings: Settings) -> Callable[[str], ResponseStatus]:
    """The model when a key is configured (keywords if it fails), else the keyword rules."""
    from reengage.domain.replies import classify

    if not settings.openai_api_key_secret:
        return classify
    from reengage.adapters.openai_writer import AiReplyClassifier, AiWriter

    writer = message_writer(settings)
    assert isinstance(writer, AiWriter)
    return AiReplyClassifier(writer, classify)


def ses_mailer(settings: Settings) -> Mailer:
    from reengage.adapters.ses_mailer import SesMailer  # only the sender sends mail

    return SesMailer(
        LazyClient("sesv2", _SES),
        settings.sender_email,
        settings.sender_name,
        settings.ses_configuration_set,
        settings.reply_to,
        settings.unsubscribe_mailto,
    )


def crm_event_bus(settings: Settings) -> EventBus | None:
    """The CRM events' bus, or None when no bus is configured."""
    if not settings.crm_event_bus:
        return None
    from reengage.adapters.event_bus import EventBridgeBus

    return EventBridgeBus(LazyClient("events"), settings.crm_event_bus)


def airtable_sync(
    settings: Settings, requests_per_second: float | None = 5.0
) -> tuple[CrmTable, SyncState, FieldMapping] | None:
    """(table, sync state, field mapping) for the Airtable sync, or None while no token is configured.

    pyairtable is imported here only: no other function's cold start pays for it."""
    if not settings.airtable_token_secret:
        return None
    from reengage.adapters.airtable import AirtableTable
    from reengage.adapters.sync_state import DynamoSyncState

    mapping = load_field_mapping(settings.airtable_mapping)
    table = AirtableTable(
        secret_text(settings.airtable_token_secret, "token"),
        settings.airtable_base_id,
        settings.airtable_table_id,
        api_url=settings.airtable_api_url,
        requests_per_second=requests_per_second,
    )
    name = f"airtable:{settings.airtable_base_id}/{settings.airtable_table_id}"
    state = DynamoSyncState(LazyClient("dynamodb"), settings.send_ledger_table_name, name)
    return table, state, mapping
