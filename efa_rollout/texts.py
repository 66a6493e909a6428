"""Every German word the code hands to a reader, from the catalogue ``templates/texts/*.ini``.

One catalogue for every layer (domain labels, reports, mail, services, portal). A message is
named ``section.key``; ``say`` fills in its ``{placeholders}``, ``table`` gives a whole section
(labels by key). The files are read on first use, once per process, so importing this module
(and the modules whose labels live here) costs nothing: no Jinja, no YAML, stdlib only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from efa_rollout import TEMPLATES_DIR

if TYPE_CHECKING:
    from configparser import ConfigParser

__all__ = ["TEXTS_DIR", "Catalogue", "Table", "catalogue", "say", "table"]

#: The catalogue's files: INI sections of ``key = text`` (a text continued on indented lines is
#: one line), one file per area; a section name is unique across the files.
TEXTS_DIR = TEMPLATES_DIR / "texts"

K = TypeVar("K")


class Catalogue:
    """The sections of every catalogue file, each a mapping of key to text in file order."""

    def __init__(self, directory: Path = TEXTS_DIR) -> None:
        self.sections: dict[str, dict[str, str]] = {}
        self.origin: dict[str, Path] = {}
        for path in sorted(directory.glob("*.ini")):
            self._read(path)

    def _read(self, path: Path) -> None:
        from configparser import ConfigParser

        # No interpolation (a % is a percent sign), keys as written, `=` only (texts hold `:`).
        parser: ConfigParser = ConfigParser(
            interpolation=None,
            delimiters=("=",),
            comment_prefixes=("#",),
            empty_lines_in_values=False,
        )
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep the keys' case
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle, source=str(path))
        for name in parser.sections():
            if name in self.sections:
                raise ValueError(
                    f"Textkatalog: Abschnitt [{name}] steht in {self.origin[name]} und in {path}."
                )
            # A value continued on indented lines is one paragraph: its lines join with a space.
            self.sections[name] = {
                key: " ".join(value.split("\n")) for key, value in parser.items(name)
            }
            self.origin[name] = path

    def section(self, name: str) -> dict[str, str]:
        """The section NAME (KeyError naming the catalogue when it is missing)."""
        try:
            return self.sections[name]
        except KeyError:
            raise KeyError(f"Textkatalog {TEXTS_DIR}: Abschnitt [{name}] fehlt") from None

    def text(self, code: str) -> str:
        """The raw text of CODE (``section.key``), placeholders unfilled."""
        section, _, key = code.rpartition(".")
        try:
            return self.section(section)[key]
        except KeyError:
            raise KeyError(f"Textkatalog {TEXTS_DIR}: {code} fehlt") from None


@functools.cache
def catalogue() -> Catalogue:
    """The catalogue, read on first use and kept for the process."""
    return Catalogue()


def say(code: str, /, **params: Any) -> str:
    """The text CODE (``section.key``) with its ``{placeholders}`` filled from PARAMS."""
    text = catalogue().text(code)
    return text.format_map(params) if params else text


class Table(Mapping[K, str], Generic[K]):
    """A catalogue section as a read-only mapping, read when first looked into."""

    __slots__ = ("_data", "_key", "_name")

    def __init__(self, name: str, key: Callable[[str], K]) -> None:
        self._name = name
        self._key = key
        self._data: dict[K, str] | None = None

    @property
    def data(self) -> dict[K, str]:
        """The section's entries, keys converted (e.g. to an enum)."""
        if self._data is None:
            section = catalogue().section(self._name)
            self._data = {self._key(k): v for k, v in section.items()}
        return self._data

    def __getitem__(self, key: K) -> str:
        return self.data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Table({self._name!r})"


@overload
def table(name: str) -> Table[str]: ...
@overload
def table(name: str, key: Callable[[str], K]) -> Table[K]: ...
def table(name: str, key: Callable[[str], Any] = str) -> Table[Any]:
    """The section NAME as a lazy mapping; KEY converts its keys (str by default)."""
    return Table(name, key)
