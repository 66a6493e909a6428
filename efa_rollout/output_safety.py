"""One place that makes user-supplied text safe for every output: XLSX, CSV, Markdown, HTML, terminal.

Directory, contact and portal text is attacker-controlled. Every writer passes its cells
through the function for its format here instead of escaping on its own:

- spreadsheets (XLSX, CSV): formula triggers neutralised (OWASP "CSV injection"), characters
  XML cannot hold removed (openpyxl raises on them);
- Markdown (report file, Prefect artifacts): every character with Markdown or HTML meaning
  escaped, line breaks folded, so a cell can neither format nor link nor break the table;
- HTML: escaped after removing control characters;
- terminal: escape sequences and other control characters shown as visible `\\x1b` text, so
  portal input cannot move the cursor, recolour or rewrite what the coordinator reads.
"""

from __future__ import annotations

import html
import io
import re
from typing import Any, TextIO

__all__ = [
    "FORMULA_PREFIXES",
    "TerminalSafeStream",
    "csv_cell",
    "html_text",
    "json_safe",
    "markdown_cell",
    "safe_value",
    "shorten",
    "spreadsheet_text",
    "strip_controls",
    "terminal_text",
]

# OWASP: cells starting with these are formulas (or DDE) for Excel, LibreOffice, Google Sheets.
# The fullwidth forms are included: some spreadsheet programs normalise them.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")

# C0 except tab/newline/CR, DEL, C1, and the code points XML 1.0 cannot hold.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Everything a terminal may interpret, plus bidi overrides/isolates ("Trojan Source").
_TERMINAL_UNSAFE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x85]")
# ASCII punctuation with a meaning in CommonMark/GFM inline syntax or in HTML.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&$:])")
_LINE_START_MARKERS = re.compile(r"^(\s*(?:\d+)?)([-.=])")


def strip_controls(text: str) -> str:
    """TEXT without control characters (tab, newline and carriage return kept)."""
    return _CONTROL.sub("", text)


def spreadsheet_text(text: str) -> str:
    """TEXT for a spreadsheet cell: no control characters, a formula trigger neutralised.

    A leading apostrophe makes Excel and LibreOffice show the cell as text (the OWASP rule);
    leading blanks are looked through because spreadsheet programs skip them.
    """
    cleaned = strip_controls(text)
    if cleaned.lstrip(" ").startswith(FORMULA_PREFIXES):
        return "'" + cleaned
    return cleaned


def csv_cell(value: Any) -> Any:
    """A CSV cell: text neutralised with `spreadsheet_text`, other values unchanged."""
    return spreadsheet_text(value) if isinstance(value, str) else value


def markdown_cell(text: Any) -> str:
    """TEXT as literal Markdown inline text, safe inside a table cell or a list item."""
    flat = _LINE_BREAKS.sub(" ", strip_controls(str(text))).replace("\t", " ")
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", flat)
    # "-", "1." or "=" at the start would make a list item or a heading underline.
    return _LINE_START_MARKERS.sub(r"\1\\\2", escaped)


def html_text(text: Any) -> str:
    """TEXT escaped for HTML element content and quoted attributes."""
    return html.escape(strip_controls(str(text)), quote=True)


def safe_value(value: Any) -> Any:
    """A Jinja `finalize` for HTML output: text without control characters, markup untouched.

    Autoescaping still happens afterwards; this only removes what HTML cannot show.
    """
    if isinstance(value, str) and not hasattr(value, "__html__"):
        return strip_controls(value)
    return value


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_text(text: Any, *, keep_newlines: bool = True) -> str:
    """TEXT safe to print: control and bidi characters shown as `\\x1b` / `\\u202e` escapes."""
    value = str(text)
    if not keep_newlines:
        value = value.replace("\n", "\\n")
    return _TERMINAL_UNSAFE.sub(_visible, value)


def json_safe(text: str) -> str:
    """JSON text with terminal-unsafe characters written as `\\uXXXX` escapes (still valid JSON)."""
    return _TERMINAL_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def shorten(text: Any, limit: int = 80) -> str:
    """TEXT cut to LIMIT characters for a message (with the full length named), made printable."""
    value = str(text)
    if len(value) > limit:
        value = f"{value[: limit - 1]}… ({len(value)} Zeichen)"
    return terminal_text(value, keep_newlines=False)


class TerminalSafeStream(io.TextIOBase):
    """A text stream that passes everything through `terminal_text` before writing.

    The CLI writes through it, so no command can print raw escape sequences from input. It
    reports no terminal, so libraries do not emit colour codes that would then show as text.
    """

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click probes with bytes to tell text from binary
            raise TypeError("text stream: str expected")
        self._target.write(terminal_text(text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def fileno(self) -> int:
        return self._target.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]  # read-only here; TextIOBase types it as a plain attribute
        return getattr(self._target, "encoding", "utf-8")
