"""`reengage health` reports DKIM and MAIL FROM for the sender's domain (SES v2 GetEmailIdentity)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from reengage.settings import Settings
from reengage_cli.health import _authentication

SETTINGS = Settings(leads_table_name="t", send_ledger_table_name="l", queue_url="q", sender_email="a@mail.example.com")


class FakeSesV2:
    def __init__(self, identity: dict[str, Any] | None) -> None:
        self.identity = identity
        self.asked: list[str] = []

    def get_email_identity(self, EmailIdentity: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.asked.append(EmailIdentity)
        if self.identity is None:
            raise ClientError({"Error": {"Code": "NotFoundException", "Message": "no"}}, "GetEmailIdentity")
        return self.identity


def identity(dkim: str, mail_from: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {"DkimAttributes": {"SigningEnabled": True, "Status": dkim}}
    if mail_from:
        found["MailFromAttributes"] = {"MailFromDomain": "bounce.mail.example.com", "MailFromDomainStatus": mail_from}
    return found


@pytest.mark.parametrize(
    ("found", "healthy", "says"),
    [
        (identity("SUCCESS", "SUCCESS"), True, "DKIM SUCCESS, MAIL FROM bounce.mail.example.com SUCCESS"),
        (identity("PENDING", "PENDING"), False, "DKIM PENDING"),
        (identity("SUCCESS", "FAILED"), False, "MAIL FROM bounce.mail.example.com FAILED"),
        (identity("SUCCESS", None), True, "no custom MAIL FROM"),
        (None, True, "no domain identity for mail.example.com"),
    ],
)
def test_dkim_and_mail_from_status(found: dict[str, Any] | None, healthy: bool, says: str) -> None:
    ses = FakeSesV2(found)
    ok, detail = _authentication(ses, SETTINGS)
    assert ses.asked == ["mail.example.com"]
    assert ok is healthy and says in detail
