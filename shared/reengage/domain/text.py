"""Untrusted text: the one definition of control characters, Unicode normalisation, and cleaning lead
fields for display."""

from __future__ import annotations

import re
import unicodedata

# C0 controls, DEL and the Unicode line/paragraph separators: never allowed in a header, a field or a subject.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
# The same, but tolerating the tab and line breaks that a body of text may carry.
CONTROL_IN_BODY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Characters that render as nothing (or reorder what is around them) but that NFKC keeps: Unicode
# format characters (zero-width spaces and joiners, bidi embeddings/overrides/isolates, the BOM, the
# soft hyphen, tag characters) are found by category; these are the invisible ones of other categories.
_INVISIBLE_EXTRA = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0\u2800")
# Full stops that IDNA treats as label separators (a link written as `evil。com`).
_DOT_LIKE = str.maketrans({"\u3002": ".", "\uff61": ".", "\uff0e": "."})

FIELD_CAP = 80


def _invisible(char: str) -> bool:
    return (
        unicodedata.category(char) == "Cf"
        or char in _INVISIBLE_EXTRA
        or "\ufe00" <= char <= "\ufe0f"  # variation selectors
        or "\U000e0100" <= char <= "\U000e01ef"
    )


def invisible_characters(text: str) -> list[str]:
    """The invisible and direction-control characters in `text`, as `U+XXXX` names."""
    if text.isascii():
        return []  # every invisible character is outside ASCII; most fields are ASCII (imports check each)
    return sorted({f"U+{ord(char):04X}" for char in text if _invisible(char)})


def normalise(text: str) -> str:
    """NFKC (full-width and compatibility forms folded: `＠` -> `@`, `ｅｘａｍｐｌｅ` -> `example`), invisible and
    bidi control characters removed, ideographic full stops read as dots."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(char for char in folded if not _invisible(char)).translate(_DOT_LIKE)


def single_line(value: str) -> str:
    """Control characters replaced by spaces and white space folded: safe for one header or one line."""
    return " ".join(CONTROL_CHARACTERS.sub(" ", value).split())


def clean_field(value: str, cap: int = FIELD_CAP) -> str:
    """Untrusted lead text: normalised (NFKC, no invisible characters), control characters removed,
    white space folded, length capped."""
    return single_line(normalise(value))[:cap].strip()


# Joiners a stored name may need (Persian, Indic scripts, emoji sequences); every other invisible or
# direction-control character is refused at import: a name carrying U+202E can display as something
# else ("moc.elpmaxe" as "example.com") in an email or a CSV export.
_NAME_JOINERS = frozenset({"U+200C", "U+200D"})
# A cell a spreadsheet would run: "=" anything, or "+", "-", "@" followed by a function call, a cell
# reference, arithmetic or a DDE command (=HYPERLINK(...), +SUM(A1), -2+3, @cmd|' /C calc'!A0).
FORMULA = re.compile(
    r"^\s*(=|[+\-@][+\-@\s]*("  # "=" anything; else signs (any run of them), then what a sheet evaluates:
    r"[A-Za-z_][A-Za-z0-9_.]*\s*[(!|]"  # a function call, a sheet reference, a DDE command
    r"|[(\"'=]"  # a parenthesis, a string or sheet name in quotes, an equals sign
    r"|\$?[A-Za-z]{1,3}\$?[0-9]+\b|R[0-9]*C[0-9]*\b"  # a cell reference (A1 or R1C1)
    r"|[0-9.,]+\s*[-+*/^&<>=%]"  # arithmetic
    r"))"
)


def text_problem(value: str) -> str | None:
    """Why untrusted text must not be stored as a lead field (a formula, invisible characters), or None."""
    if FORMULA.match(value):
        return f"looks like a spreadsheet formula (starts with {value.strip()[:1]!r}), which a CSV export would run"
    if found := [name for name in invisible_characters(value) if name not in _NAME_JOINERS]:
        return f"contains an invisible or bidirectional control character ({found[0]})"
    return None
