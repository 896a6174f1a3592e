"""Load with faults: leads in mixed states through scheduler and sender on the emulator.

Random faults are injected throughout (SES throttling, senders dying after the send, after
the record and mid-batch, schedulers dying after claims, duplicate batch deliveries), people
held by two lead records (the address in another case), and the CRM export re-imported
between runs and while emails are being sent (it knows nothing of follow-ups or replies:
every row says "No Response" with the first contact date). The run goes on until the queue
is quiet. Prints leads due, emails sent, duplicates (must be 0), lost (must be 0) and
throughput.

    .venv/bin/python benchmarks/pipeline_load.py [--leads 10000] [--seed 3]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared"), str(ROOT / "cli")]

from reengage.domain.clock import format_time  # noqa: E402
from reengage.domain.leads import FollowUpPolicy, Lead  # noqa: E402
from reengage.services.imports import import_rows  # noqa: E402
from reengage.settings import Settings  # noqa: E402
from reengage_cli.emulator import provision  # noqa: E402
from reengage_cli.emulator.server import LocalEmulator, use_endpoint  # noqa: E402
from tests.faults.harness import Faults, Pipeline, check_invariants, crash, ses_throttling  # noqa: E402

FAULTS = {
    "ses.before_send": (0.03, ses_throttling),
    "sender.after_send": (0.005, crash),
    "sender.after_record": (0.005, crash),
    "sender.read": (0.003, crash),
    "scheduler.after_claim": (0.001, crash),
}


TWINS = 0.04  # share of people held by two lead records
REIMPORTED = 0.2  # share of the export re-imported between runs
REIMPORT_IN_LOCK = 0.01  # chance a lead's export row lands between its send lock and its record


def export_row(lead: Lead) -> dict[str, object]:
    """The lead as the CRM exports it: its own fields, no follow-ups, no responses learned."""
    return {
        "id": lead.id,
        "name": lead.name,
        "email": lead.email,
        "company": lead.company,
        "engagement_status": lead.engagement_status,
        "email_confidence_level": lead.email_confidence_level,
        "response_status": "No Response",
        "last_contacted": lead.last_contacted,
    }


class Reimports:
    """CRM re-imports, from the export taken before the campaign started."""

    def __init__(self, pipeline: Pipeline, leads: list[Lead]) -> None:
        self.pipeline = pipeline
        self.export = {lead.id: export_row(lead) for lead in leads}
        self.rows = 0
        self.runs = 0

    def rows_of(self, lead_ids: list[str]) -> None:
        rows = enumerate((self.export[lead_id] for lead_id in lead_ids), start=1)
        report = import_rows(self.pipeline.real_stores, rows, self.pipeline.now, self.pipeline.settings.policy)
        assert not report.rejected, report.rejected[:3]
        self.rows += len(lead_ids)
        self.runs += 1

    def in_lock(self, lead_id: str) -> None:
        self.rows_of([lead_id])


def build_leads(count: int, pipeline: Pipeline, rng: random.Random) -> tuple[list[Lead], set[str], set[str]]:
    leads: list[Lead] = []
    due: set[str] = set()
    other: set[str] = set()
    for number in range(count):
        kind = rng.choices(
            ["due1", "due2", "recent", "answered", "finished", "guess", "new"], [30, 10, 25, 10, 10, 8, 7]
        )[0]
        days = rng.uniform(8, 40) if kind in ("due1", "due2", "answered", "finished", "guess") else rng.uniform(0, 3)
        lead = Lead(
            id=f"load-{number:05d}",
            email=f"lead{number}@example.com",
            name=f"Lead {number}",
            company=f"Company {number % 997}",
            engagement_status="New" if kind == "new" else "Sent",
            email_confidence_level="Guess" if kind == "guess" else "Real",
            last_contacted=format_time(pipeline.now - timedelta(days=days)),
            follow_up_stage={"due2": "Followup_1", "finished": "Followup_2"}.get(kind),
            response_status="Interested" if kind == "answered" else "No Response",
        )
        (due if kind in ("due1", "due2") else other).add(lead.email)
        FollowUpPolicy().reschedule(lead)
        leads.append(lead)
        if rng.random() < TWINS:
            # The same person under a second record: the address in another case, the same state.
            twin = replace(lead, id=f"{lead.id}-twin", email=lead.email.replace("lead", "Lead").upper())
            FollowUpPolicy().reschedule(twin)
            leads.append(twin)
    return leads, due, other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--duplicate-batches", type=float, default=0.05, help="share of batches delivered twice")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with LocalEmulator() as server:
        use_endpoint(server.endpoint, os.environ)
        os.environ.update(provision.provision().environment)
        settings = replace(Settings.from_env(os.environ), max_sends_per_day=0)
        faults = Faults(rng=random.Random(args.seed))
        for point, (chance, hook) in FAULTS.items():
            faults.sometimes(point, chance, hook)
        pipeline = Pipeline(server.endpoint, settings, faults)

        leads, due, other = build_leads(args.leads, pipeline, rng)
        pipeline.real_stores.leads.put_many(leads)  # type: ignore[attr-defined]
        twins = sum(lead.id.endswith("-twin") for lead in leads)
        print(f"leads: {len(leads)} ({len(due)} people due, {len(other)} not due or not eligible, {twins} twins)")
        reimports = Reimports(pipeline, leads)
        faults.sometimes("sender.after_lock", REIMPORT_IN_LOCK, reimports.in_lock)

        started = time.perf_counter()
        for _ in range(6):  # daily runs, each drained, with a partial re-import of the export between them
            pipeline.run_until_quiet(rounds=1, duplicate_chance=args.duplicate_batches)
            reimports.rows_of(rng.sample(sorted(reimports.export), int(len(leads) * REIMPORTED)))
        elapsed = time.perf_counter() - started
        verdict = check_invariants(pipeline, due, other)
        print(f"faults injected:         {dict(faults.fired)}; invocations that died: {pipeline.crashes}")
        print(f"re-imported:             {reimports.rows} rows in {reimports.runs} imports")
        print(f"leads due:               {verdict.due}")
        print(f"emails sent:             {verdict.sent} (+{verdict.ineligible_emailed} to leads not due)")
        print(f"duplicates:              {verdict.duplicates}")
        print(f"lost:                    {verdict.lost}")
        print(f"recorded possibly sent:  {verdict.possibly_sent} (sender died after SES accepted; sent once)")
        print(f"left claimed:            {verdict.left_claimed}")
        print(
            f"throughput:              {verdict.sent / elapsed:.1f} emails/s end to end on the emulator "
            f"({elapsed:.1f} s for 6 scheduler runs and the sends)"
        )


if __name__ == "__main__":
    main()
