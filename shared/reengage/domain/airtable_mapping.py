"""Which Airtable field holds which lead attribute: the user's mapping, checked once.

The defaults are the seed's field names (`Engagement_Status`, `Response_Status`, ...). A user
mapping is JSON (in an SSM parameter or a file) naming only what differs:
`{"email": "Work Email", "timezone": null}` (null: that attribute is not synced).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reengage.domain.imports import CRM_OWNED

# lead attribute -> Airtable field name
DEFAULT_FIELDS: dict[str, str] = {
    "id": "Lead_ID",
    "name": "Name",
    "email": "Email",
    "company": "Company",
    "company_website": "Company_Website",
    "timezone": "Timezone",
    "country": "Country",
    "engagement_status": "Engagement_Status",
    "engagement_stage": "Engagement_Stage",
    "email_confidence_level": "Email_Confidence_Level",
    "last_contacted": "Last_Contacted",
    "follow_up_stage": "Follow_Up_Stage",
    "response_status": "Response_Status",
    "eligible_for_reengagement": "Eligible_For_Reengagement",
    # Written by reengage only: one short line per follow-up and response.
    "reengage_history": "Reengage_History",
}
# Read from Airtable (what `reengage import` reads from a file).
PULLED = ("id", *CRM_OWNED, "last_contacted", "follow_up_stage", "response_status")
# Written back to Airtable: what reengage owns.
PUSHED = ("follow_up_stage", "response_status", "eligible_for_reengagement", "last_contacted", "reengage_history")
_REQUIRED = ("email", "engagement_status")


class MappingError(ValueError):
    """The field mapping cannot be used (what is wrong, and where it came from)."""


@dataclass(frozen=True)
class FieldMapping:
    fields: Mapping[str, str]  # lead attribute -> Airtable field (attributes not synced are absent)

    @classmethod
    def from_dict(cls, overrides: Any, origin: str = "mapping") -> FieldMapping:
        """The defaults with `overrides` applied; every problem reported at once."""
        if not isinstance(overrides, dict):
            raise MappingError(f"{origin}: must be a JSON object of lead attribute -> Airtable field name")
        problems = []
        fields = dict(DEFAULT_FIELDS)
        for attribute, name in overrides.items():
            if attribute not in DEFAULT_FIELDS:
                problems.append(f"{attribute!r} is not a lead attribute (known: {', '.join(sorted(DEFAULT_FIELDS))})")
            elif name is None:
                fields.pop(attribute, None)
            elif not isinstance(name, str) or not name.strip():
                problems.append(f"{attribute}: field name must be non-empty text or null, got {name!r}")
            else:
                fields[attribute] = name.strip()
        for attribute in _REQUIRED:
            if attribute not in fields:
                problems.append(f"{attribute} must be mapped to a field")
        seen: dict[str, str] = {}
        for attribute, name in fields.items():
            if name in seen:
                problems.append(f"{attribute} and {seen[name]} both map to the field {name!r}")
            seen[name] = attribute
        if problems:
            raise MappingError(f"{origin}: " + "; ".join(problems))
        return cls(fields)

    @classmethod
    def from_json(cls, text: str, origin: str) -> FieldMapping:
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError as error:
            raise MappingError(f"{origin}: not JSON ({error})") from error
        return cls.from_dict(data, origin)

    def row(self, record_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """An Airtable record's fields as an import row (attribute names; an empty id is the record's id)."""
        row = {
            attribute: values[name] for attribute, name in self.fields.items() if attribute in PULLED and name in values
        }
        if row.get("id") in (None, ""):
            row["id"] = record_id
        return row

    def pushed(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Lead values (by attribute) as Airtable fields, for the attributes reengage writes back."""
        return {
            self.fields[attribute]: values[attribute]
            for attribute in PUSHED
            if attribute in self.fields and attribute in values
        }

    @property
    def pushed_fields(self) -> list[str]:
        return [self.fields[attribute] for attribute in PUSHED if attribute in self.fields]
