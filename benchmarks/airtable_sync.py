"""First Airtable sync of a large table: records per second under Airtable's 5 requests/s limit.

pyairtable (paced by the adapter) against the local Airtable-compatible server holding
--records records (default 10,000); the leads land in in-memory stores (tests/fakes.py), so
what is measured is the sync itself: reading pages of 100 under the rate limit, validating
and merging every record. The limit must be the bottleneck: the time spent held back by the
pacer should be most of the run, and the server must refuse nothing (429).

    .venv/bin/python benchmarks/airtable_sync.py [--records 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared"), str(ROOT / "cli")]

from reengage.adapters.airtable import AirtableTable  # noqa: E402
from reengage.domain.airtable_mapping import DEFAULT_FIELDS, FieldMapping  # noqa: E402
from reengage.domain.leads import FollowUpPolicy, Lead  # noqa: E402
from reengage.services.crm_sync import pull  # noqa: E402
from reengage_cli.emulator.airtable_server import LocalAirtable  # noqa: E402
from tests.fakes import InMemoryTables  # noqa: E402

BASE, TABLE = "appBenchmark00001", "tblLeads"


class IndexedTables(InMemoryTables):
    """The in-memory tables with an index on the address (as the leads table's EmailIndex): the
    fake's own linear search would otherwise be what is measured."""

    def __init__(self) -> None:
        super().__init__()
        by_email: dict[str, str] = {}
        leads = self.stores.leads
        put = leads.put

        def indexed_put(lead: Lead, previous: Lead | None = None) -> bool:
            written = put(lead, previous)
            if written:
                by_email[lead.email.lower()] = lead.id
            return written

        leads.put = indexed_put  # type: ignore[method-assign]
        leads.find_by_email = lambda address: by_email.get(address.lower())  # type: ignore[method-assign]


class MemorySyncState:
    def __init__(self) -> None:
        self.saved: str | None = None
        self.record_to_lead: dict[str, str] = {}

    def cursor(self) -> str | None:
        return self.saved

    def save_cursor(self, cursor: str, at: str) -> None:
        self.saved = cursor

    def links(self) -> dict[str, str]:
        return dict(self.record_to_lead)

    def records_of(self, lead_ids: Iterable[str]) -> dict[str, str]:
        wanted = set(lead_ids)
        return {lead: record for record, lead in self.record_to_lead.items() if lead in wanted}

    def link(self, pairs: Mapping[str, str]) -> None:
        self.record_to_lead.update(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    now = datetime.now(UTC)
    with LocalAirtable() as server:
        server.create_table(BASE, TABLE, list(DEFAULT_FIELDS.values()))
        server.add(
            BASE,
            TABLE,
            [
                {
                    "Name": f"Lead {n}",
                    "Email": f"lead{n}@example.com",
                    "Company": f"Company {n % 500}",
                    "Engagement_Status": "Sent",
                    "Email_Confidence_Level": "Real",
                    "Last_Contacted": (now - timedelta(days=1 + n % 20)).isoformat(),
                    "Response_Status": "No Response" if n % 10 else "Interested",
                }
                for n in range(args.records)
            ],
        )
        table = AirtableTable(server.token, BASE, TABLE, api_url=server.url)
        tables = IndexedTables()
        started = time.perf_counter()
        report = pull(tables.stores, table, MemorySyncState(), FieldMapping.from_dict({}), now, FollowUpPolicy())
        elapsed = time.perf_counter() - started
    waited = table.api.waited
    print(f"records:               {args.records}")
    print(f"leads created:         {report.created} (rejected {len(report.rejected)})")
    print(f"requests:              {server.request_count} (429 refused: {server.rate_limited})")
    print(f"busiest second:        {server.busiest_second} requests (Airtable allows 5)")
    print(f"elapsed:               {elapsed:.1f} s")
    print(f"records per second:    {report.read / elapsed:.0f}")
    print(f"requests per second:   {server.request_count / elapsed:.2f}")
    print(f"held back by the pacer: {waited:.1f} s ({waited / elapsed:.0%} of the run; the rest is HTTP and our code)")


if __name__ == "__main__":
    main()
