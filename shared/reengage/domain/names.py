"""Names as a CRM shows them: who to greet, and how to write the company.

`nameparser` reads the shapes people type into CRMs ("Watson, Emma", "Dr. Emma Watson PhD",
"EMMA WATSON", "Robert (Bob) Smith"): titles and suffixes are dropped, a nickname is preferred,
case is fixed when the whole name was typed in one case. A part that is only an initial, a
placeholder or not a name at all gives no first name, and the message uses its generic greeting.
Whether a field is safe to repeat at all (no links, addresses, phone numbers...) is the gate's
call (domain/quality.py), not this module's.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from reengage.domain.text import clean_field

NAME_CAP = 40

# What CRMs hold when nobody knows the name.
_NOT_A_NAME = frozenset(
    {
        "n/a", "na", "none", "null", "nil", "unknown", "test", "tbd", "user", "customer", "client", "contact",
        "lead", "prospect", "sir", "madam", "sir/madam", "team", "info", "admin", "sales", "support", "hello",
        "there", "friend", "owner", "manager", "undefined", "noname", "no name", "first", "firstname", "name",
    }
)  # fmt: skip
# A greeting typed into the name field ("Dear Customer", "Hi Emma"): the field is not a name.
_GREETING_WORDS = frozenset({"dear", "hi", "hello", "hey", "hiya", "greetings", "good", "attn", "attn:", "to"})
# What CRMs hold when nobody knows the company, or a form left with a sign-off or a legal form alone.
_NOT_A_COMPANY = frozenset(
    {
        "n/a", "na", "none", "null", "nil", "unknown", "test", "tbd", "tba", "company", "the company", "my company",
        "your company", "business", "organisation", "organization", "self", "self-employed", "self employed",
        "private", "individual", "personal", "freelance", "freelancer", "home", "other", "-", "--", "?", ".",
        "company name", "employer", "not applicable", "no company", "undefined", "default",
        "ltd", "ltd.", "limited", "inc", "inc.", "llc", "gmbh", "co", "co.", "corp", "corp.", "corporation", "plc",
        "ag", "sa", "s.a.", "bv", "b.v.", "pty ltd", "best regards", "kind regards", "regards", "best",
        "best wishes", "thanks", "thank you", "cheers", "sincerely", "yours sincerely", "all the best",
    }
)  # fmt: skip
# Legal forms dropped when a company is mentioned in running text ("Acme Robotics, Inc." -> "Acme Robotics").
# "Inc" and "Corp" only after a comma: "Startup Inc" is a name, "Acme Robotics, Inc." has a legal form.
_LEGAL_FORM = re.compile(
    r",\s*(?:inc|incorporated|corp|corporation)\.?$|"
    r"[,\s]+(?:llc|l\.l\.c|ltd|limited|gmbh|ag|s\.?a|s\.?a\.?s|s\.?r\.?l|"
    r"b\.?v|n\.?v|plc|pty(?:\s+ltd)?|oy|ab|as|a/s|k\.?k|kk|sp\.?\s*z\s*o\.?o)\.?$",
    re.IGNORECASE,
)
_LEGAL_WORDS = {"INC": "Inc", "INC.": "Inc.", "CORP": "Corp", "CORP.": "Corp.", "CO": "Co", "CO.": "Co."}
_LOWER_WORDS = frozenset({"and", "of", "the", "for", "de", "la", "le", "du", "van", "von", "der", "den", "y", "e", "&"})
_INITIAL = re.compile(r"^\w\.?$")


@dataclass(frozen=True)
class PersonName:
    first: str  # who to greet; empty when the name gives none worth using
    last: str


def _letters_only(part: str) -> bool:
    """A name part: letters (any script) with the joiners names use (hyphen, apostrophe, dot, space)."""
    return bool(part) and all(unicodedata.category(char)[0] in "LM" or char in "-'’. " for char in part)


def _fix_case(part: str) -> str:
    if part.isupper() or part.islower():
        return "-".join(piece[:1].upper() + piece[1:].lower() for piece in part.split("-"))
    return part


def _no_spaces_script(text: str) -> bool:
    """Chinese, Japanese, Korean and Thai names are often written without a space between the parts."""
    return any(
        "\u3040" <= char <= "\u30ff" or "\u4e00" <= char <= "\u9fff" or "\uac00" <= char <= "\ud7af"
        or "\u0e00" <= char <= "\u0e7f"
        for char in text
    )  # fmt: skip


def parse_person(raw: str) -> PersonName:
    """The first name to greet and the last name, from whatever shape the CRM holds."""
    from nameparser import HumanName  # loaded on first use (a message is being written)

    text = clean_field(raw, NAME_CAP * 2)
    if text.split(" ", 1)[0].casefold().rstrip(",") in _GREETING_WORDS:
        return PersonName("", "")
    if not text or text.casefold() in _NOT_A_NAME or text.rstrip().endswith(","):
        # "Watson," is a last name with the first missing.
        return PersonName("", text.rstrip(", ") if text.casefold() not in _NOT_A_NAME else "")
    if " " not in text and "," not in text and _no_spaces_script(text):
        return PersonName(text if len(text) <= 8 else "", "")
    name = HumanName(text)
    if text.isupper() or text.islower():
        name.capitalize(force=True)
    candidates = [str(name.nickname), str(name.first), str(name.middle).split(" ")[0]]
    first = next(
        (
            part
            for part in candidates
            if part and not _INITIAL.match(part) and _letters_only(part) and part.casefold() not in _NOT_A_NAME
        ),
        "",
    )
    if len(first) > NAME_CAP:
        first = ""
    return PersonName(_fix_case(first), _fix_case(str(name.last)))


def display_company(raw: str) -> str:
    """The company as running text: cleaned, legal form dropped, shouting lowered ("ACME ROBOTICS INC" ->
    "Acme Robotics"), short acronyms kept ("IBM"); empty for a placeholder ("Unknown", "Company", "Ltd",
    "Best regards")."""
    text = clean_field(raw)
    if text.casefold().strip(" ,.!") in _NOT_A_COMPANY:
        return ""
    stripped = _LEGAL_FORM.sub("", text).strip(" ,")
    text = stripped or text
    if text.islower() and any(char.isalpha() for char in text):  # "acme robotics" -> "Acme Robotics"
        words = text.split()
        text = " ".join(
            word if index and word in _LOWER_WORDS else word[:1].upper() + word[1:] for index, word in enumerate(words)
        )
    elif text.isupper() and any(len(word) > 4 for word in text.split()):
        text = " ".join(_LEGAL_WORDS.get(word, word if len(word) <= 3 else word.capitalize()) for word in text.split())
    return text
