"""Untrusted text: the one definition of control characters, and cleaning lead fields for display."""

from __future__ import annotations

import re

# C0 controls, DEL and the Unicode line/paragraph separators: never allowed in a header, a field or a subject.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
# The same, but tolerating the tab and line breaks that a body of text may carry.
CONTROL_IN_BODY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

FIELD_CAP = 80


def single_line(value: str) -> str:
    """Control characters replaced by spaces and white space folded: safe for one header or one line."""
    return " ".join(CONTROL_CHARACTERS.sub(" ", value).split())


def clean_field(value: str, cap: int = FIELD_CAP) -> str:
    """Untrusted lead text: control characters removed, white space folded, length capped."""
    return single_line(value)[:cap].strip()
