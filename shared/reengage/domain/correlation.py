"""Correlation: how an email reengage sent is tied back to its lead and stage.

Two carriers: our own Message-ID (a reply quotes it in In-Reply-To/References) and the
SES message tags (SES events carry them). Both hold the lead id in an encoding that
survives the characters each allows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

from reengage.domain.leads import STAGE_ORDER, FollowUpStage

_TAG_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_OWN_PREFIX = "rg."
_ENCODED, _LEGACY_HEX = "b_", "h_"
TAG_LIMIT = 256  # characters in an SES message tag value
# base64url carries 6 bits a character: 254 characters after the prefix hold 190 bytes.
LEAD_ID_MAX_BYTES = 190


def encode_tag(value: str) -> str:
    """A lead id as an SES tag value ([A-Za-z0-9_-], at most 256): as is when it fits, else base64url.

    Lossless for every id of at most LEAD_ID_MAX_BYTES bytes of UTF-8 (imports refuse longer ids).
    """
    if _TAG_SAFE.match(value) and not value.startswith((_ENCODED, _LEGACY_HEX)):
        return value
    return _ENCODED + base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_tag(value: str) -> str:
    try:
        if value.startswith(_ENCODED):
            payload = value[len(_ENCODED) :]
            return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
        if value.startswith(_LEGACY_HEX):  # tags written before base64url
            return bytes.fromhex(value[len(_LEGACY_HEX) :]).decode()
    except (ValueError, binascii.Error):
        return value
    return value


def lead_id_problem(lead_id: str) -> str | None:
    """Why a lead id cannot travel in SES tags and Message-IDs without loss, or None."""
    size = len(lead_id.encode())
    if size > LEAD_ID_MAX_BYTES:
        return f"{size} bytes of UTF-8; lead ids are at most {LEAD_ID_MAX_BYTES} bytes so SES events can name them"
    return None


def reply_mac(key: bytes, lead_id: str, stage: str, locked_at: str) -> str:
    """The unforgeable part of our Message-ID: an HMAC of the lead, the stage and the send (the time
    its send lock was taken, which the ledger record of that send keeps)."""
    message = "|".join((lead_id, stage, locked_at)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def own_message_id(lead_id: str, stage: str, mac: str, domain: str) -> str:
    """The Message-ID reengage gives a follow-up: it names the lead and stage and carries `reply_mac`,
    so a reply quoting it is matched by one ledger read and can be checked, never guessed."""
    return f"<{_OWN_PREFIX}{encode_tag(lead_id)}.{stage}.{mac}@{domain}>"


@dataclass(frozen=True)
class OwnReference:
    lead_id: str
    stage: FollowUpStage
    mac: str

    def signed_by(self, key: bytes, locked_at: str) -> bool:
        """True when this reference carries the HMAC of the send whose lock was taken at `locked_at`."""
        expected = reply_mac(key, self.lead_id, self.stage.value, locked_at)
        return bool(key) and bool(locked_at) and hmac.compare_digest(self.mac.encode(), expected.encode())


def parse_own_reference(reference: str) -> OwnReference | None:
    """The lead, stage and HMAC named by one of our Message-IDs (the part before @), else None."""
    if not reference.startswith(_OWN_PREFIX) or not reference.isascii():
        return None
    parts = reference.split(".")
    if len(parts) != 4 or parts[2] not in STAGE_ORDER:
        return None
    return OwnReference(decode_tag(parts[1]), FollowUpStage(parts[2]), parts[3])


def is_own_reference(reference: str) -> bool:
    return reference.startswith(_OWN_PREFIX)
