"""Where the knowledge base comes from: the bundled sample, a file, or an SSM parameter on the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from reengage.adapters.parameters import load_knowledge_base
from reengage.domain.knowledge import BUNDLED, KnowledgeBaseError
from tests.conftest import Emulator


def test_bundled_sample_is_complete() -> None:
    knowledge = load_knowledge_base("")
    assert knowledge.company and knowledge.postal_address and knowledge.proof_points
    assert knowledge.allowed_link_domains == ("northbeam.example",)


def test_from_an_ssm_parameter(aws: Emulator) -> None:
    data = {
        **json.loads(BUNDLED.read_text()),
        "company": "Param Co",
        "allowed_link_domains": ["Param.Example"],
        "call_to_action_url": "https://meet.param.example/sam",
    }
    boto3.client("ssm").put_parameter(Name="/reengage/kb", Value=json.dumps(data), Type="String")
    knowledge = load_knowledge_base("ssm:/reengage/kb")
    assert knowledge.company == "Param Co" and knowledge.allowed_link_domains == ("param.example",)


def test_missing_ssm_parameter_is_a_clear_error(aws: Emulator) -> None:
    with pytest.raises(KnowledgeBaseError, match="SSM parameter /nope"):
        load_knowledge_base("ssm:/nope")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "must be a JSON object"),
        ('{"company": "X"}', "missing offer, proof_points, call_to_action"),
        (json.dumps({**json.loads(BUNDLED.read_text()), "proof_points": "one"}), "proof_points must be a list"),
        (
            json.dumps({**json.loads(BUNDLED.read_text()), "call_to_action_url": "https://evil.example/meet"}),
            "call_to_action_url must be an https link to an allowed_link_domains host",
        ),
        (
            json.dumps({**json.loads(BUNDLED.read_text()), "call_to_action_url": "http://northbeam.example/meet"}),
            "call_to_action_url must be an https link",
        ),
    ],
)
def test_bad_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "kb.json"
    path.write_text(content)
    with pytest.raises(KnowledgeBaseError, match=message):
        load_knowledge_base(str(path))
