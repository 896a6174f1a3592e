"""Settings: parsed from the environment once, validated, then passed down.

Handlers and the CLI read the same variables; nothing below them reads os.environ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reengage.leads import email_problem

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """One or more environment variables are missing or invalid."""


@dataclass(frozen=True)
class Settings:
    leads_table_name: str
    send_ledger_table_name: str
    queue_url: str
    sender_email: str
    sender_name: str = "reengage"
    days_between_followups: int = 7
    max_followups: int = 2
    dry_run: bool = False
    # A claim older than this is taken to be abandoned and is claimed again.
    claim_timeout_minutes: int = 720
    # Sends per UTC day across all senders (0 = no cap); keep it under the SES quota.
    max_sends_per_day: int = 200
    openai_model: str = "gpt-4o-mini"
    # Name or ARN of the Secrets Manager secret holding the OpenAI key; empty = templates only.
    openai_api_key_secret: str = ""
    openai_base_url: str = ""
    openai_timeout_seconds: int = 10
    # Empty = the bundled sample; a file path; or ssm:/parameter/name.
    knowledge_base: str = ""
    # One-click unsubscribe: the endpoint's URL, the secret holding the link-signing key, an optional mailto.
    unsubscribe_url: str = ""
    unsubscribe_key_secret: str = ""
    unsubscribe_mailto: str = ""
    # SES configuration set publishing Send/Delivery/Bounce/Complaint/Reject events (empty = none).
    ses_configuration_set: str = ""
    # Replies go here (an address on the SES inbound domain); empty = replies go to SENDER_EMAIL.
    reply_to: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from environment variables, reporting every problem at once."""
        read = _EnvReader(env)
        sender_email = read.text("SENDER_EMAIL")
        if sender_email and (problem := email_problem(sender_email)):
            read.problems.append(f"SENDER_EMAIL={sender_email!r} is not a valid address: {problem}")
        settings = cls(
            leads_table_name=read.text("LEADS_TABLE_NAME"),
            send_ledger_table_name=read.text("SEND_LEDGER_TABLE_NAME"),
            queue_url=read.text("QUEUE_URL"),
            sender_email=sender_email,
            sender_name=read.text("SENDER_NAME", "reengage"),
            days_between_followups=read.integer("DAYS_BETWEEN_FOLLOWUPS", 7, 1, 365),
            max_followups=read.integer("MAX_FOLLOWUPS", 2, 1, 2),
            dry_run=read.boolean("DRY_RUN", False),
            claim_timeout_minutes=read.integer("CLAIM_TIMEOUT_MINUTES", 720, 5, 10080),
            max_sends_per_day=read.integer("MAX_SENDS_PER_DAY", 200, 0, 10_000_000),
            openai_model=read.text("OPENAI_MODEL", "gpt-4o-mini"),
            openai_api_key_secret=read.text("OPENAI_API_KEY_SECRET", ""),
            openai_base_url=read.text("OPENAI_BASE_URL", ""),
            openai_timeout_seconds=read.integer("OPENAI_TIMEOUT_SECONDS", 10, 1, 60),
            knowledge_base=read.text("KNOWLEDGE_BASE", ""),
            unsubscribe_url=read.text("UNSUBSCRIBE_URL", ""),
            unsubscribe_key_secret=read.text("UNSUBSCRIBE_KEY_SECRET", ""),
            unsubscribe_mailto=read.text("UNSUBSCRIBE_MAILTO", ""),
            ses_configuration_set=read.text("SES_CONFIGURATION_SET", ""),
            reply_to=read.text("REPLY_TO", ""),
        )
        if settings.unsubscribe_url and not settings.unsubscribe_key_secret:
            read.problems.append("UNSUBSCRIBE_URL is set but UNSUBSCRIBE_KEY_SECRET is not")
        if read.problems:
            raise SettingsError("; ".join(read.problems))
        return settings

    def to_env(self) -> dict[str, str]:
        """The environment variables that produce these settings (for `reengage env`)."""
        return {
            "LEADS_TABLE_NAME": self.leads_table_name,
            "SEND_LEDGER_TABLE_NAME": self.send_ledger_table_name,
            "QUEUE_URL": self.queue_url,
            "SENDER_EMAIL": self.sender_email,
            "SENDER_NAME": self.sender_name,
            "DAYS_BETWEEN_FOLLOWUPS": str(self.days_between_followups),
            "MAX_FOLLOWUPS": str(self.max_followups),
            "DRY_RUN": str(self.dry_run).lower(),
            "CLAIM_TIMEOUT_MINUTES": str(self.claim_timeout_minutes),
            "MAX_SENDS_PER_DAY": str(self.max_sends_per_day),
            "OPENAI_MODEL": self.openai_model,
            "OPENAI_API_KEY_SECRET": self.openai_api_key_secret,
            "OPENAI_BASE_URL": self.openai_base_url,
            "OPENAI_TIMEOUT_SECONDS": str(self.openai_timeout_seconds),
            "KNOWLEDGE_BASE": self.knowledge_base,
            "UNSUBSCRIBE_URL": self.unsubscribe_url,
            "UNSUBSCRIBE_KEY_SECRET": self.unsubscribe_key_secret,
            "UNSUBSCRIBE_MAILTO": self.unsubscribe_mailto,
            "SES_CONFIGURATION_SET": self.ses_configuration_set,
            "REPLY_TO": self.reply_to,
        }


class _EnvReader:
    """Typed reads of environment variables that collect problems instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def text(self, name: str, default: str | None = None) -> str:
        value = self.env.get(name, "").strip()
        if value:
            return value
        if default is None:
            self.problems.append(f"{name} is not set")
            return ""
        return default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a whole number")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name}={value} must be between {low} and {high}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        self.problems.append(f"{name}={raw!r} must be true or false")
        return default
