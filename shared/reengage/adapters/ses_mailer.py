"""Sending email with Amazon SES (v2, raw MIME): every header of a follow-up is written here.

From, To, Subject, Date, our Message-ID, Reply-To, the one-click List-Unsubscribe pair
and the SES message tags, from the facts in `OutgoingEmail` (domain/messages.py).
"""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import formatdate, make_msgid
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
)

from reengage.domain.correlation import encode_tag
from reengage.domain.leads import ascii_domain
from reengage.domain.messages import OutgoingEmail
from reengage.domain.text import single_line
from reengage.domain.unsubscribe import ONE_CLICK_BODY
from reengage.ports import SendInDoubtError, SendNotAttemptedError, SendRejectedError, TransientError

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
        # The deployment's problem, not the lead's: retried, then dead-lettered for an operator.
        "AccessDenied",
        "AccessDeniedException",
        "NotAuthorizedException",
        "ConfigurationSetDoesNotExistException",
    }
)


# Headers that mail software parses as lists of <URL>s, message ids or addresses (RFC 2369, 8058,
# 5322). The email package folds any header over 78 characters with no space into RFC 2047
# encoded words (`=?utf-8?q?=3Chttps=3A//...?=`), which no provider decodes in these headers:
# they are written on one line, exactly as given.
VERBATIM_HEADERS = frozenset(
    {"list-unsubscribe", "list-unsubscribe-post", "message-id", "in-reply-to", "references", "reply-to"}
)
MAX_HEADER_LINE = 998  # RFC 5322 2.1.1


class HeaderNotWritableError(ValueError):
    """A structured header value that cannot go out verbatim (non-ASCII, a line break, too long)."""


class VerbatimStructuredHeaders(EmailPolicy):
    """The default policy, except that the structured headers above are never folded or encoded."""

    def _verbatim_line(self, name: str, value: str) -> str:
        text = str(value)
        line = f"{name}: {text}"
        if not text.isascii() or "\r" in text or "\n" in text or len(line) > MAX_HEADER_LINE:
            raise HeaderNotWritableError(f"{name} cannot be written verbatim: {text[:80]!r}")
        return line + self.linesep

    def fold(self, name: str, value: str) -> str:
        if name.lower() in VERBATIM_HEADERS:
            return self._verbatim_line(name, value)
        return str(super().fold(name, value))

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in VERBATIM_HEADERS:
            return self._verbatim_line(name, value).encode("ascii")
        return bytes(super().fold_binary(name, value))


MIME_POLICY = VerbatimStructuredHeaders()


def _mailbox(display_name: str, address: str) -> Address:
    local, domain = address.split("@")
    # Display names come from lead data: no line breaks or control characters reach a header.
    safe_name = single_line(display_name)[:120]
    return Address(display_name=safe_name, username=local, domain=ascii_domain(domain) or domain)


def headers(email: OutgoingEmail, reply_to: str = "", unsubscribe_mailto: str = "") -> dict[str, str]:
    """The headers beyond From/To/Subject/Date: threading, replies and one-click unsubscribe (RFC 8058)."""
    values: dict[str, str] = {}
    if email.message_id:
        values["Message-ID"] = email.message_id
    if reply_to:
        values["Reply-To"] = reply_to
    if email.unsubscribe_url:
        targets = [f"<{email.unsubscribe_url}>"]
        if unsubscribe_mailto:
            targets.append(f"<mailto:{unsubscribe_mailto}?subject=unsubscribe>")
        values["List-Unsubscribe"] = ", ".join(targets)
        values["List-Unsubscribe-Post"] = ONE_CLICK_BODY
    return values


def build_mime(
    email: OutgoingEmail, sender_name: str, sender_email: str, reply_to: str = "", unsubscribe_mailto: str = ""
) -> bytes:
    """A multipart/alternative message (plain text first, then HTML) with every header."""
    message = EmailMessage(policy=MIME_POLICY)
    message["From"] = _mailbox(sender_name, sender_email)
    message["To"] = _mailbox(email.to_name, email.to)
    message["Subject"] = single_line(email.subject)
    message["Date"] = formatdate(usegmt=True)
    extra = headers(email, reply_to, unsubscribe_mailto)
    message["Message-ID"] = extra.pop("Message-ID", "") or make_msgid(domain=sender_email.split("@")[1])
    for name, value in extra.items():
        message[name] = single_line(value)
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message.as_bytes()


class SesMailer:
    """Satisfies `reengage.ports.Mailer`."""

    def __init__(
        self,
        client: Any,
        sender_email: str,
        sender_name: str,
        configuration_set: str = "",
        reply_to: str = "",
        unsubscribe_mailto: str = "",
    ) -> None:
        self.client = client
        self.sender_email = sender_email
        self.sender_name = sender_name
        self.configuration_set = configuration_set
        self.reply_to = reply_to
        self.unsubscribe_mailto = unsubscribe_mailto

    def send(self, email: OutgoingEmail) -> str:
        try:
            raw = build_mime(email, self.sender_name, self.sender_email, self.reply_to, self.unsubscribe_mailto)
            tags = [{"Name": key, "Value": encode_tag(value)} for key, value in email.tags.items()]
        except Exception as error:  # noqa: BLE001 - whatever it is, nothing reached SES
            raise SendNotAttemptedError(f"the message could not be built: {type(error).__name__}: {error}") from error
        extra = {"ConfigurationSetName": self.configuration_set} if self.configuration_set else {}
        try:
            response = self.client.send_email(
                FromEmailAddress=self.sender_email, Content={"Raw": {"Data": raw}}, EmailTags=tags, **extra
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _RETRYABLE:
                raise TransientError(f"SES {code}") from error
            raise SendRejectedError(f"SES {code}: {error.response.get('Error', {}).get('Message', '')}") from error
        except (ParamValidationError, NoCredentialsError) as error:
            raise SendNotAttemptedError(f"SES was not called: {error}") from error
        except (EndpointConnectionError, ConnectTimeoutError) as error:
            # The request never reached SES.
            raise TransientError(f"SES unreachable: {error}") from error
        except Exception as error:  # noqa: BLE001 - ReadTimeout, ConnectionClosed, anything mid-request
            # The request may have reached SES and the answer was lost: it may have been sent.
            raise SendInDoubtError(f"SES did not answer: {type(error).__name__}: {error}") from error
        return str(response["MessageId"])
