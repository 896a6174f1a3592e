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


# -- masking addresses in logs ------------------------------------------------------
# Around an "@", an address is parsed rather than pattern-matched: the local part runs back to a
# character no local part holds unquoted (RFC 5322 atext is wide: {weird}@, o'brien@, and RFC 6532
# allows any non-ASCII), or is a quoted string; the domain runs on over letters of any script, digits,
# hyphens and dots (IDN: bücher.de, 例え.jp, with the ideographic full stops IDNA maps), or is a literal.
_LOCAL_STOPS = frozenset('<>()[],;:"@\\') | frozenset("\u3000")


def _local_start(text: str, at: int, floor: int) -> int:
    """Where the local part ending before `at` starts (== at when there is none), not before `floor`."""
    if at > floor and text[at - 1] == '"':  # a quoted local part: back to its opening quote
        index = at - 2
        while index >= floor:
            if text[index] == '"' and (index == floor or text[index - 1] != "\\"):
                return index
            index -= 1
        at -= 1  # an unmatched quote: the characters before it are the local part
    index = at
    while index > floor and not text[index - 1].isspace() and text[index - 1] not in _LOCAL_STOPS:
        index -= 1
    return index


def _has_domain(text: str, at: int) -> bool:
    """A host name (any script) or a domain literal follows the @."""
    after = text[at + 1 : at + 2]
    return bool(after) and (after.isalnum() or after == "[")


def mask_addresses(text: str) -> str:
    """Every email address in `text` with its local part masked: `ana.lima@example.com` ->
    `a***@example.com`, `"kai müller"@bücher.de` -> `"k***"@bücher.de`, `z@例え.jp` -> `z***@例え.jp`.
    Enough to tell leads apart in a log, not to mail them. Domains are kept."""
    if "@" not in text:
        return text
    out: list[str] = []
    done = floor = 0
    at = text.find("@")
    while at >= 0:
        start = _local_start(text, at, floor)
        if start < at and _has_domain(text, at):
            local = text[start:at]
            quoted = local.startswith('"') and len(local) > 1
            out.append(text[done:start])
            out.append(f'"{local[1:2]}***"' if quoted else f"{local[:1]}***")
            done = at
        floor = at + 1
        at = text.find("@", at + 1)
    out.append(text[done:])
    return "".join(out)
