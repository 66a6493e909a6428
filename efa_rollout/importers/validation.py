"""Row errors, the all-or-nothing error report, import results and the field parsers."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from efa_rollout.domain.contacts import SALUTATION_ALIASES
from efa_rollout.errors import UserError
from efa_rollout.output_safety import shorten
from efa_rollout.texts import say

T = TypeVar("T")

MAX_SHOWN_ERRORS = 50

# ASCII digits only: `\d` also matches fullwidth and Arabic-Indic digits, which int() accepts,
# so "８１３６０８８" would become a new, different AGS.
_DIGITS = re.compile(r"[0-9]+")
_GROUPED_INT = re.compile(r"[0-9]{1,3}(?:[.\u00a0\u202f' ][0-9]{3})+")
MAX_SHOWN_VALUE = 60

TRUE_WORDS = frozenset({"ja", "j", "x", "1", "true", "wahr", "yes", "y"})
FALSE_WORDS = frozenset({"nein", "n", "0", "false", "falsch", "no", ""})


class FieldError(ValueError):
    """A cell value that does not parse; the message is the German reason."""


@dataclass(frozen=True)
class RowError:
    """One problem in an input file: where it is, what was there, and why it is wrong."""

    file: str
    line: int | None
    column: str | None
    value: str | None
    reason: str

    def render(self) -> str:
        """One line, e.g. `datei.csv, Zeile 7, Spalte »AGS«: »8136A88« – kein gültiger …`."""
        where = [self.file]
        if self.line is not None:
            where.append(say("import.line", line=self.line))
        if self.column is not None:
            where.append(say("import.column", column=self.column))
        text = ", ".join(where)
        if self.value is not None:
            text = say("import.value", where=text, value=shorten(self.value, MAX_SHOWN_VALUE))
        return say("import.reason", where=text, reason=self.reason)


class ImportErrors(UserError):
    """An import refused as a whole because of bad rows; renders every error (first 50 shown)."""

    def __init__(self, errors: Sequence[RowError], *, source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source or (self.errors[0].file if self.errors else say("import.file"))
        super().__init__(self._headline(), details=self._detail_lines())

    def _headline(self) -> str:
        """The summary sentence of the report."""
        lines = {e.line for e in self.errors if e.line is not None}
        return say("import.errors", source=self.source, errors=len(self.errors), lines=len(lines))

    def _detail_lines(self) -> list[str]:
        """The first MAX_SHOWN_ERRORS errors, then how many more there are."""
        shown = [error.render() for error in self.errors[:MAX_SHOWN_ERRORS]]
        rest = len(self.errors) - MAX_SHOWN_ERRORS
        if rest > 0:
            shown.append(say("import.more_errors", rest=rest))
        return shown


@dataclass
class ImportResult:
    """What an import did (or would have done): counts, skipped rows and errors."""

    source: str
    format: str
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there were no errors (and the import was applied)."""
        return not self.errors

    def summary(self) -> str:
        """The counts in German, e.g. `42 hinzugefügt, 0 geändert, 0 unverändert`."""
        text = say(
            "import.summary",
            added=format_number(self.added),
            changed=format_number(self.changed),
            unchanged=format_number(self.unchanged),
        )
        if self.skipped:
            text = say("import.summary_skipped", summary=text, skipped=format_number(self.skipped))
        return text

    def raise_for_errors(self) -> None:
        """Raise ImportErrors when the result has errors."""
        if self.errors:
            raise ImportErrors(self.errors, source=self.source)


class ErrorCollector:
    """Collects RowErrors for one file and turns FieldErrors of parsers into them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[RowError] = []

    def add(self, line: int | None, column: str | None, value: str | None, reason: str) -> None:
        """Record one error."""
        self.errors.append(RowError(self.source, line, column, value, reason))

    def parse(
        self, line: int, column: str | None, value: str, parser: Callable[[str], T]
    ) -> T | None:
        """PARSER(VALUE), or None after recording the error when it raises FieldError."""
        try:
            return parser(value)
        except FieldError as error:
            self.add(line, column, value, str(error))
            return None


def format_number(value: int) -> str:
    """An integer with German thousands separators, e.g. 10.981."""
    return f"{value:,}".replace(",", ".")


def parse_ags(value: str) -> str:
    """An 8-digit AGS; restores a leading zero Excel dropped (7 digits)."""
    text = value.strip()
    if not text:
        raise FieldError(say("import.value.ags_missing"))
    if not _DIGITS.fullmatch(text) or len(text) not in (7, 8):
        raise FieldError(say("import.value.ags_invalid"))
    ags = text.zfill(8)
    if not 1 <= int(ags[:2]) <= 16:
        raise FieldError(say("import.value.ags_state"))
    return ags


def parse_ars(value: str, ags: str | None = None) -> str:
    """A 12-digit ARS (11 digits: leading zero restored), consistent with AGS when given."""
    text = value.strip()
    if not _DIGITS.fullmatch(text) or len(text) not in (11, 12):
        raise FieldError(say("import.value.ars_invalid"))
    ars = text.zfill(12)
    if ags is not None and (ars[:5] != ags[:5] or ars[9:] != ags[5:]):
        raise FieldError(say("import.value.ars_mismatch", ags=ags))
    return ars


def ars_from_ags(ags: str, association_code: str) -> str:
    """The ARS: the AGS's first five digits, the association code, the AGS's last three."""
    return ags[:5] + association_code + ags[5:]


def parse_non_negative_int(value: str) -> int:
    """A non-negative integer; accepts German thousands separators (68.816)."""
    text = value.strip()
    if _DIGITS.fullmatch(text):
        return int(text)
    if _GROUPED_INT.fullmatch(text):
        return int(re.sub(r"[^0-9]", "", text))
    raise FieldError(say("import.value.number_invalid"))


def parse_population(value: str) -> int:
    """A population figure: a non-negative integer."""
    try:
        return parse_non_negative_int(value)
    except FieldError:
        raise FieldError(say("import.value.population_invalid")) from None


def parse_postal_code(value: str) -> str:
    """A German postal code (5 digits; a lost leading zero is restored)."""
    text = value.strip()
    if not _DIGITS.fullmatch(text) or len(text) not in (4, 5):
        raise FieldError(say("import.value.postal_code_invalid"))
    return text.zfill(5)


def parse_digits(value: str, length: int, what: str) -> str:
    """Exactly LENGTH digits (left-padded with zeros when shorter)."""
    text = value.strip()
    if not _DIGITS.fullmatch(text) or len(text) > length:
        raise FieldError(say("import.value.digits_invalid", what=what, length=length))
    return text.zfill(length)


def parse_bool(value: str) -> bool:
    """ja/nein, x/leer, 1/0, true/false (case-insensitive) as a bool."""
    text = value.strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise FieldError(say("import.value.bool_invalid"))


def parse_salutation(value: str) -> str | None:
    """Frau, Herr or None (empty)."""
    text = value.strip().rstrip(".").lower()
    if not text:
        return None
    if text in SALUTATION_ALIASES:
        return SALUTATION_ALIASES[text]
    raise FieldError(say("import.value.salutation_unknown"))


def parse_email(value: str) -> str:
    """The normalized form of an e-mail address (syntax only, no DNS lookup)."""
    from efa_rollout.mail.message import NON_ASCII, InvalidAddressError, contact_address

    text = value.strip()
    if not text:
        raise FieldError(say("import.value.email_missing"))
    try:
        return contact_address(text)
    except InvalidAddressError as error:
        if (reason := say(NON_ASCII)) in error.message:
            raise FieldError(reason) from None
        raise FieldError(say("import.value.email_invalid")) from None


def max_length(limit: int) -> Callable[[str], str]:
    """A parser that strips a text and refuses it when longer than LIMIT characters."""

    def parse(value: str) -> str:
        text = value.strip()
        if len(text) > limit:
            raise FieldError(say("import.value.too_long", limit=limit))
        return text

    return parse


def display_name(official_name: str) -> str:
    """The name as people write it: the part before the first ', ' ("Aalen, Stadt" → "Aalen")."""
    return official_name.strip().split(", ", 1)[0].strip()


def parse_district_filter(value: str | None) -> str | None:
    """A --district option: a 5-digit district key (a lost leading zero is restored)."""
    if value is None:
        return None
    text = value.strip()
    if not _DIGITS.fullmatch(text) or len(text) not in (4, 5):
        raise UserError(say("import.district_filter", value=value))
    return text.zfill(5)


def parse_state_filter(value: str | None) -> str | None:
    """A --state option: a 2-digit state key 01–16."""
    if value is None:
        return None
    text = value.strip()
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= 16 or len(text) > 2:
        raise UserError(say("import.state_filter", value=value))
    return text.zfill(2)


def in_selection(ags: str, district: str | None, state: str | None) -> bool:
    """Whether AGS lies in the district and state filters (None: no filter)."""
    return (district is None or ags.startswith(district)) and (
        state is None or ags.startswith(state)
    )


def duplicate_lines(keyed_lines: Iterable[tuple[Hashable, int]]) -> dict[int, list[int]]:
    """For every line whose key occurs more than once: all lines sharing that key."""
    by_key: dict[Hashable, list[int]] = defaultdict(list)
    for key, line in keyed_lines:
        by_key[key].append(line)
    return {line: lines for lines in by_key.values() if len(lines) > 1 for line in lines}


def describe_lines(lines: Sequence[int]) -> str:
    """`Zeilen 3 und 9` / `Zeilen 3, 5 und 9`."""
    numbers = [str(n) for n in sorted(lines)]
    return say("import.lines", lines=", ".join(numbers[:-1]), last=numbers[-1])
