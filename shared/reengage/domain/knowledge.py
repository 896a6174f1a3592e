"""The knowledge base: who is writing, what they offer, what they may link to.

Deployments point KNOWLEDGE_BASE at their own: empty for the sample bundled with the
layer, a file path (e.g. a JSON file added to the layer), or `ssm:/name` for an SSM
parameter holding the JSON (read by adapters/parameters.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUNDLED = Path(__file__).with_name("knowledge_base.json")


class KnowledgeBaseError(ValueError):
    """The knowledge base is missing, not JSON, or lacks a required field."""


@dataclass(frozen=True)
class KnowledgeBase:
    company: str
    offer: str
    proof_points: tuple[str, ...]
    call_to_action: str
    sender_name: str
    signature: str
    postal_address: str
    allowed_link_domains: tuple[str, ...] = ()
    website: str = ""
    call_to_action_url: str = ""  # the one link a follow-up carries, added by reengage after the prose

    @classmethod
    def from_dict(cls, data: Any, source: str) -> KnowledgeBase:
        if not isinstance(data, dict):
            raise KnowledgeBaseError(f"{source}: must be a JSON object")
        required = ("company", "offer", "proof_points", "call_to_action", "sender_name", "signature", "postal_address")
        missing = [name for name in required if not data.get(name)]
        if missing:
            raise KnowledgeBaseError(f"{source}: missing {', '.join(missing)}")
        points = data["proof_points"]
        if not isinstance(points, list) or not all(isinstance(point, str) for point in points):
            raise KnowledgeBaseError(f"{source}: proof_points must be a list of sentences")
        domains = data.get("allowed_link_domains", [])
        if not isinstance(domains, list) or not all(isinstance(domain, str) for domain in domains):
            raise KnowledgeBaseError(f"{source}: allowed_link_domains must be a list of domains")
        url = str(data.get("call_to_action_url", ""))
        host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
        if url and (
            not url.startswith("https://")
            or not any(host == domain.lower() or host.endswith("." + domain.lower()) for domain in domains)
        ):
            raise KnowledgeBaseError(
                f"{source}: call_to_action_url must be an https link to an allowed_link_domains host"
            )
        return cls(
            company=str(data["company"]),
            offer=str(data["offer"]),
            proof_points=tuple(points),
            call_to_action=str(data["call_to_action"]),
            sender_name=str(data["sender_name"]),
            signature=str(data["signature"]),
            postal_address=str(data["postal_address"]),
            allowed_link_domains=tuple(domain.lower() for domain in domains),
            website=str(data.get("website", "")),
            call_to_action_url=url,
        )

    def as_prompt_data(self) -> dict[str, Any]:
        return {
            "company": self.company,
            "offer": self.offer,
            "proof_points": list(self.proof_points),
            "call_to_action": self.call_to_action,
        }


def load_knowledge_file(location: str) -> KnowledgeBase:
    """The knowledge base in a JSON file (empty `location`: the bundled sample)."""
    path = Path(location) if location else BUNDLED
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise KnowledgeBaseError(f"{path}: {error.strerror}") from error
    except ValueError as error:
        raise KnowledgeBaseError(f"{path}: not JSON ({error})") from error
    return KnowledgeBase.from_dict(data, str(path))
