"""Settings: one declarative model, parsed from the environment once, validated, then passed down.

Each variable is declared once, as a field: its environment name is the field name in
upper case, its type and bounds come from the declaration. Handlers and the CLI read the
same variables; nothing below them reads os.environ.

A stdlib dataclass rather than a pydantic model: pydantic's import costs about 85 ms on
every function's cold start (0.8x `import boto3`), for twenty strings and numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from reengage.domain.leads import FollowUpPolicy, email_problem
from reengage.domain.send_windows import (
    SendWindow,
    SendWindowError,
    parse_closed_dates,
    parse_weekdays,
    parse_window_times,
    valid_zone,
)

ALWAYS = "always"  # SEND_WINDOW value: no send window (any hour, any day)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """One or more environment variables are missing or invalid."""


def _setting(default: Any = MISSING, low: int | None = None, high: int | None = None) -> Any:
    """A field read from the environment: no default = required; numbers within [low, high]."""
    return field(default=default, metadata={"low": low, "high": high})


@dataclass(frozen=True)
class Settings:
    leads_table_name: str = _setting()
    send_ledger_table_name: str = _setting()
    queue_url: str = _setting()
    sender_email: str = _setting()
    sender_name: str = _setting("reengage")
    days_between_followups: int = _setting(7, 1, 365)
    max_followups: int = _setting(2, 1, 2)
    dry_run: bool = _setting(False)
    # Partitions of the schedule index (`<state>#<shard>`); changing it needs `reengage migrate`.
    schedule_shards: int = _setting(16, 1, 256)
    # A claim older than this is taken to be abandoned and is claimed again.
    claim_timeout_minutes: int = _setting(720, 5, 10080)
    # Sends per UTC day across all senders (0 = no cap); keep it under the SES quota.
    max_sends_per_day: int = _setting(200, 0, 10_000_000)
    # The account's SES sending rate (emails per second): one run's sends are spread at this rate.
    ses_max_send_rate: int = _setting(2, 1, 1000)
    openai_model: str = _setting("gpt-4o-mini")
    # Name or ARN of the Secrets Manager secret holding the OpenAI key; empty = templates only.
    openai_api_key_secret: str = _setting("")
    openai_base_url: str = _setting("")
    openai_timeout_seconds: int = _setting(10, 1, 60)
    # Empty = the bundled sample; a file path; or ssm:/parameter/name.
    knowledge_base: str = _setting("")
    # One-click unsubscribe: the endpoint's URL, the secret holding the link-signing key, an optional mailto.
    unsubscribe_url: str = _setting("")
    unsubscribe_key_secret: str = _setting("")
    unsubscribe_mailto: str = _setting("")
    # SES configuration set publishing Delivery/Bounce/Complaint/Reject events (empty = none).
    ses_configuration_set: str = _setting("")
    # Replies go here (an address on the SES inbound domain); empty = replies go to SENDER_EMAIL.
    reply_to: str = _setting("")
    # Send windows, in each lead's local time (README "Send windows"); SEND_WINDOW=always turns them off.
    send_window: str = _setting("08:00-11:00")
    send_days: str = _setting("mon-fri")
    closed_dates: str = _setting("")  # YYYY-MM-DD,...: the deployment's own closing days
    public_holidays: bool = _setting(True)  # skip the public holidays of the lead's country
    default_timezone: str = _setting("UTC")  # for leads whose zone cannot be inferred
    # A response from one lead pauses the open sequences of its colleagues for this many days (0 = off).
    company_pause_days: int = _setting(14, 0, 365)
    # Airtable sync (README "Airtable and CRM"): off while no token secret is configured.
    airtable_token_secret: str = _setting("")
    airtable_base_id: str = _setting("")
    airtable_table_id: str = _setting("")
    airtable_api_url: str = _setting("https://api.airtable.com")
    airtable_mapping: str = _setting("")  # empty = the seed's field names; a file path; or ssm:/parameter/name
    crm_event_bus: str = _setting("")  # the EventBridge bus CRM events go to (empty = none)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from environment variables, reporting every problem at once."""
        problems: list[str] = []
        values = {spec.name: _read(env, spec, problems) for spec in fields(cls)}
        sender_email = values["sender_email"]
        if sender_email and (problem := email_problem(sender_email)):
            problems.append(f"SENDER_EMAIL={sender_email!r} is not a valid address: {problem}")
        if values["unsubscribe_url"] and not values["unsubscribe_key_secret"]:
            problems.append("UNSUBSCRIBE_URL is set but UNSUBSCRIBE_KEY_SECRET is not")
        if values["airtable_token_secret"] and not (values["airtable_base_id"] and values["airtable_table_id"]):
            problems.append("AIRTABLE_TOKEN_SECRET is set but AIRTABLE_BASE_ID or AIRTABLE_TABLE_ID is not")
        if not valid_zone(values["default_timezone"]):
            problems.append(f"DEFAULT_TIMEZONE={values['default_timezone']!r} is not an IANA time zone name")
        try:
            _window(values)
        except SendWindowError as error:
            problems.append(f"send window: {error}")
        if problems:
            raise SettingsError("; ".join(problems))
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment variables that produce these settings (for `reengage env`)."""
        return {spec.name.upper(): _format(getattr(self, spec.name)) for spec in fields(self)}

    @property
    def send_window_rule(self) -> SendWindow | None:
        return _window(self.__dict__)

    @property
    def policy(self) -> FollowUpPolicy:
        return FollowUpPolicy(
            self.days_between_followups,
            self.max_followups,
            window=self.send_window_rule,
            default_zone=self.default_timezone,
            company_pause_days=self.company_pause_days,
        )


def _window(values: Mapping[str, Any]) -> SendWindow | None:
    """The send window the settings describe (None: always); SendWindowError says what is wrong."""
    if str(values["send_window"]).strip().lower() == ALWAYS:
        return None
    start, end = parse_window_times(values["send_window"])
    return SendWindow(
        start=start,
        end=end,
        weekdays=parse_weekdays(values["send_days"]),
        closed_dates=parse_closed_dates(values["closed_dates"]),
        public_holidays=bool(values["public_holidays"]),
    )


def _format(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _read(env: Mapping[str, str], spec: Any, problems: list[str]) -> Any:
    """One field's value from the environment, or its default with the problem noted."""
    name = spec.name.upper()
    raw = env.get(name, "").strip()
    default = spec.default
    if spec.type == "bool":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return default if not raw else False
        problems.append(f"{name}={raw!r} must be true or false")
        return default
    if not raw:
        if default is MISSING:
            problems.append(f"{name} is not set")
            return ""
        return default
    if spec.type != "int":
        return raw
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name}={raw!r} is not a whole number")
        return default
    low, high = spec.metadata["low"], spec.metadata["high"]
    if not low <= value <= high:
        problems.append(f"{name}={value} must be between {low} and {high}")
    return value
