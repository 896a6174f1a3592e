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


# Invisible and bidirectional-control characters: zero-width spaces, directional marks (ZWJ and ZWNJ
# stay: Persian, Indic scripts and emoji need them),
# embeddings, overrides and isolates, word joiners, invisible operators, the BOM, the soft hyphen
# and Mongolian vowel separator. A name that carries them can display as something else (U+202E
# turns "moc.elpmaxe" into "example.com") in an email or a CSV export.
INVISIBLE_CHARACTERS = re.compile(r"[\u00ad\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# A cell a spreadsheet would run: "=" anything, or "+", "-", "@" followed by a function call, a cell
# reference, arithmetic or a DDE command (=HYPERLINK(...), +SUM(A1), -2+3, @cmd|' /C calc'!A0).
FORMULA = re.compile(
    r"^\s*(=|[+\-@]\s*([A-Za-z_][A-Za-z0-9_.]*\s*\(|\$?[A-Za-z]{1,3}\$?[0-9]+\b|[0-9.,]+\s*[-+*/^&<>=%]|[A-Za-z]+\|))"
)


def text_problem(value: str) -> str | None:
    """Why untrusted text must not be stored as a lead field (a formula, invisible characters), or None."""
    if FORMULA.match(value):
        return f"looks like a spreadsheet formula (starts with {value.strip()[:1]!r}), which a CSV export would run"
    if found := INVISIBLE_CHARACTERS.search(value):
        return f"contains an invisible or bidirectional control character (U+{ord(found.group()):04X})"
    return None
