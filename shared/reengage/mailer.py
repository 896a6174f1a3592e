"""Sending email with Amazon SES (v2, raw MIME so every message carries its own headers)."""

from __future__ import annotations

import re
from dataclasses import replace
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from reengage.leads import ascii_domain
from reengage.ports import OutgoingEmail, SendInDoubtError, SendRejectedError, TransientError
from reengage.ses_events import encode_tag

# Errors that say nothing was sent and a later try may work (quota, throttling, paused account).
_RETRYABLE = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "MaxSendRateExceeded",
        "LimitExceededException",
        "SendingPausedException",
        "AccountSuspendedException",
        "MailFromDomainNotVerifiedException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def _mailbox(display_name: str, address: str) -> Address:
    local, domain = address.split("@")
    # Display names come from lead data: no line breaks or control characters reach a header.
    safe_name = " ".join(_CONTROL.sub(" ", display_name).split())[:120]
    return Address(display_name=safe_name, username=local, domain=ascii_domain(domain) or domain)


def build_mime(email: OutgoingEmail, sender_name: str, sender_email: str) -> bytes:
    """A multipart/alternative message (plain text first, then HTML)."""
    message = EmailMessage()
    message["From"] = _mailbox(sender_name, sender_email)
    message["To"] = _mailbox(email.to_name, email.to)
    message["Subject"] = " ".join(_CONTROL.sub(" ", email.subject).split())
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = email.headers.get("Message-ID") or make_msgid(domain=sender_email.split("@")[1])
    for name, value in email.headers.items():
        if name == "Message-ID":
            continue
        message[name] = " ".join(_CONTROL.sub(" ", value).split())
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message.as_bytes()


class SesMailer:
    """Satisfies `reengage.ports.Mailer`."""

    def __init__(
        self, client: Any, sender_email: str, sender_name: str, configuration_set: str = "", reply_to: str = ""
    ) -> None:
        self.client = client
        self.sender_email = sender_email
        self.sender_name = sender_name
        self.configuration_set = configuration_set
        self.reply_to = reply_to

    def send(self, email: OutgoingEmail) -> str:
        if self.reply_to:
            email = replace(email, headers={**email.headers, "Reply-To": self.reply_to})
        raw = build_mime(email, self.sender_name, self.sender_email)
        tags = [{"Name": key, "Value": encode_tag(value)[:256]} for key, value in email.tags.items()]
        try:
            extra = {"ConfigurationSetName": self.configuration_set} if self.configuration_set else {}
            response = self.client.send_email(
                FromEmailAddress=self.sender_email, Content={"Raw": {"Data": raw}}, EmailTags=tags, **extra
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _RETRYABLE:
                raise TransientError(f"SES {code}") from error
            raise SendRejectedError(f"SES {code}: {error.response.get('Error', {}).get('Message', '')}") from error
        except (EndpointConnectionError, ConnectTimeoutError) as error:
            # The request never reached SES.
            raise TransientError(f"SES unreachable: {error}") from error
        except (ReadTimeoutError, ConnectionClosedError) as error:
            # The request reached SES and the answer was lost: it may have been sent.
            raise SendInDoubtError(f"SES did not answer: {error}") from error
        return str(response["MessageId"])
