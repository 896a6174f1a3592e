"""The adversarial corpus (tests/data): model outputs and hostile lead records with the verdict each must get."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reengage.domain.leads import FollowUpStage, Lead
from tests.conftest import ago

DATA = Path(__file__).with_name("data")

# The lead every draft is written for, and the two drafts the injections go into.
LEAD = Lead(
    id="lead-ana",
    email="ana@acmerobotics.com",
    name="Ana Lima",
    company="Acme Robotics",
    company_website="https://acmerobotics.com",
    engagement_status="Sent",
    email_confidence_level="Real",
    last_contacted=ago(days=8),
    response_status="No Response",
)
BASE = {
    FollowUpStage.FOLLOWUP_1: (
        "Following up on the note I sent last week about Acme Robotics. Since then, one result stood out: teams "
        "using Northbeam cut time spent on manual follow-up work by about a third within the first quarter.\n\n"
        "With planning for next quarter under way, it would be a shame for Acme Robotics to miss that window. "
        "Would a 15-minute call next week be useful? If the timing is off, a one-line reply is plenty."
    ),
    FollowUpStage.FOLLOWUP_2: (
        "I've written twice about Acme Robotics, most recently last week, and this is my final message.\n\n"
        "Competitors are already automating their follow-through, and every quarter of waiting widens the gap. "
        "If it matters this year, reply and we can set up a 15-minute call next week.\n\n"
        "If not, I won't email you again. I wish you and the team all the best."
    ),
}


@dataclass(frozen=True)
class DraftCase:
    id: str
    kind: str
    stage: FollowUpStage
    subject: str
    body: str
    is_final: bool
    acknowledges_previous: bool
    expect: str  # pass | reject
    reason: str  # a fragment of one of the problems the gate must name

    def __str__(self) -> str:
        return f"{self.id}-{self.kind}"


def _body(row: dict[str, Any], stage: FollowUpStage) -> str:
    if "body" in row:
        return str(row["body"])
    first, rest = BASE[stage].split("\n\n", 1)
    return f"{first} {row.get('inject', '')}".rstrip() + "\n\n" + rest


def draft_cases() -> list[DraftCase]:
    cases = []
    for line in (DATA / "adversarial_drafts.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        stage = FollowUpStage(row["stage"])
        cases.append(
            DraftCase(
                id=row["id"],
                kind=row["class"],
                stage=stage,
                subject=row["subject"],
                body=_body(row, stage),
                is_final=row.get("is_final", stage is FollowUpStage.FOLLOWUP_2),
                acknowledges_previous=row.get("acknowledges_previous", True),
                expect=row["expect"],
                reason=row.get("reason", ""),
            )
        )
    return cases


@dataclass(frozen=True)
class HostileLead:
    id: str
    kind: str
    lead: Lead
    expect_first_name: str
    expect_company: str
    forbidden: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.id}-{self.kind}"


def hostile_leads() -> list[HostileLead]:
    cases = []
    for line in (DATA / "hostile_leads.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        lead = Lead(
            id=row["id"],
            email=row["email"],
            name=row["name"],
            company=row["company"],
            engagement_status="Sent",
            email_confidence_level="Real",
            last_contacted=ago(days=8),
            response_status="No Response",
        )
        cases.append(
            HostileLead(
                row["id"], row["class"], lead, row["expect_first_name"], row["expect_company"], tuple(row["forbidden"])
            )
        )
    return cases
