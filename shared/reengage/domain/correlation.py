"""Correlation: how an email reengage sent is tied back to its lead and stage.

Two carriers: our own Message-ID (a reply quotes it in In-Reply-To/References) and the
SES message tags (SES events carry them). Both hold the lead id in an encoding that
survives the characters each allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reengage.domain.leads import STAGE_ORDER, FollowUpStage

_TAG_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_OWN_PREFIX = "rg."


def encode_tag(value: str) -> str:
    """SES tag values allow only [A-Za-z0-9_-]: other ids travel hex-encoded behind `h_`."""
    return value if _TAG_SAFE.match(value) and not value.startswith("h_") else "h_" + value.encode().hex()


def decode_tag(value: str) -> str:
    if value.startswith("h_"):
        try:
            return bytes.fromhex(value[2:]).decode()
        except ValueError:
            return value
    return value


def own_message_id(lead_id: str, stage: str, nonce: str, domain: str) -> str:
    """The Message-ID reengage gives a follow-up: it names the lead and stage, whose ledger record
    exists before the email leaves, so a reply quoting it matches without any lookup table."""
    return f"<{_OWN_PREFIX}{encode_tag(lead_id)}.{stage}.{nonce}@{domain}>"


@dataclass(frozen=True)
class OwnReference:
    lead_id: str
    stage: FollowUpStage


def parse_own_reference(reference: str) -> OwnReference | None:
    """The lead and stage named by one of our Message-IDs (the part before @), else None."""
    if not reference.startswith(_OWN_PREFIX):
        return None
    parts = reference.split(".")
    if len(parts) != 4 or parts[2] not in STAGE_ORDER:
        return None
    return OwnReference(decode_tag(parts[1]), FollowUpStage(parts[2]))


def is_own_reference(reference: str) -> bool:
    return reference.startswith(_OWN_PREFIX)
