"""The contact rules every entry point shares (portal, answers, CLI, imports): limits and forms."""

from __future__ import annotations

import re

#: Longest name or function of a contact person.
MAX_CONTACT_TEXT = 200
#: The salutations a contact may have (or none).
SALUTATIONS = ("Frau", "Herr")
#: Spellings of a salutation (lowercased, without a trailing dot) → the stored one.
SALUTATION_ALIASES = {"frau": "Frau", "fr": "Frau", "herr": "Herr", "hr": "Herr"}
#: Longest phone number, after folding white space.
MAX_PHONE = 40

_PHONE = re.compile(r"^\+?[0-9 ()/\-]+$")


def is_phone(text: str) -> bool:
    """Digits, spaces and + / - ( ): at least 3 digits, at most MAX_PHONE characters."""
    return (
        bool(_PHONE.match(text))
        and sum(ch.isdigit() for ch in text) >= 3
        and len(text) <= MAX_PHONE
    )
