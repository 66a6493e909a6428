"""Read CSV and XLSX files as they come from Excel into rows with line numbers, map headers."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from efa_rollout.errors import UserError
from efa_rollout.output_safety import shorten
from efa_rollout.texts import say

FORMAT_GV100AD = "gv100ad"
FORMAT_CSV = "csv"
FORMAT_XLSX = "xlsx"

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"
_GV100AD_LINE = re.compile(r"(10|20|30|40|50|60)[0-9]{8}")
_DELIMITERS = (";", ",", "\t")
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_NAMES = {
    "utf-8-sig": "UTF-8",
    "utf-16-le": "UTF-16",
    "utf-16-be": "UTF-16",
    "utf-32-le": "UTF-32",
    "utf-32-be": "UTF-32",
}
_SAVE_AS_UTF8 = "import.file.save_as_utf8"

# Limits for every input file: a directory of all of Germany has ~11,000 municipalities.
MAX_FILE_BYTES = 50_000_000
MAX_ROWS = 200_000
MAX_COLUMNS = 200
MAX_CELL_CHARS = 10_000
MAX_XLSX_UNPACKED_BYTES = 100_000_000
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


@dataclass(frozen=True)
class Row:
    """One data row: its line (CSV) or sheet row (XLSX) number and its cells as stripped text."""

    line: int
    cells: tuple[str, ...]

    def get(self, index: int | None) -> str:
        """The cell at INDEX ('' when the row is shorter or INDEX is None)."""
        if index is None or index >= len(self.cells):
            return ""
        return self.cells[index]


@dataclass(frozen=True)
class Table:
    """A file read as a header row and data rows."""

    source: str
    format: str
    headers: tuple[str, ...]
    rows: tuple[Row, ...]
    header_line: int = 1
    encoding: str | None = None
    delimiter: str | None = None


@dataclass
class ColumnMap:
    """Which column holds which known field, and the remaining columns with attribute keys."""

    headers: tuple[str, ...]
    fields: dict[str, int] = field(default_factory=dict)
    extras: dict[str, int] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        """Whether the file has a column for field NAME."""
        return name in self.fields

    def header(self, name: str) -> str | None:
        """The header text of field NAME as written in the file."""
        index = self.fields.get(name)
        return None if index is None else self.headers[index]

    def value(self, row: Row, name: str) -> str:
        """The cell of field NAME in ROW ('' when the column is missing)."""
        return row.get(self.fields.get(name))

    def extra_values(self, row: Row) -> dict[str, str]:
        """The non-empty cells of the extra columns, keyed by attribute key."""
        values = {key: row.get(index) for key, index in self.extras.items()}
        return {key: value for key, value in values.items() if value}

    def extra_headers(self) -> list[str]:
        """The header texts of the extra columns."""
        return [self.headers[index] for index in self.extras.values()]


def file_label(path: Path) -> str:
    """How a file is named in messages and in `source`: its file name."""
    return path.name


def detect_format(path: Path) -> str:
    """`gv100ad`, `xlsx` or `csv`, judged by the file's content (not its extension)."""
    head = _read_head(path)
    if head.startswith(_ZIP_MAGIC):
        return FORMAT_XLSX
    if head.startswith(_OLE_MAGIC):
        raise UserError(
            say("import.file.old_excel", file=file_label(path)),
            details=[say("import.file.save_as_xlsx")],
        )
    first_line = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0]
    if _GV100AD_LINE.match(first_line.decode("latin-1")) and len(first_line) >= 124:
        return FORMAT_GV100AD
    return FORMAT_CSV


def _read_head(path: Path, size: int = 4096) -> bytes:
    """The first SIZE bytes of PATH, with a German error when it cannot be read."""
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except FileNotFoundError:
        raise UserError(say("import.file.not_found", path=path)) from None
    except IsADirectoryError:
        raise UserError(say("import.file.is_folder", path=path)) from None
    except OSError as error:
        raise UserError(say("import.file.unreadable", path=path, error=error)) from None


def read_text(path: Path) -> tuple[str, str]:
    """The text of PATH and its encoding, detected for the whole file.

    A BOM decides (UTF-8, UTF-16, UTF-32); without one the file must be UTF-8 or Windows-1252
    throughout. A file that is UTF-8 in some lines and not in others is refused naming the
    first bad line, instead of importing mojibake.
    """
    _read_head(path, 0)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(
            say(
                "import.file.too_large",
                file=file_label(path),
                size=size // 1_000_000,
                limit=MAX_FILE_BYTES // 1_000_000,
            )
        )
    return decode_text(path.read_bytes(), file_label(path))


def decode_text(data: bytes, source: str) -> tuple[str, str]:
    """DATA decoded as described in `read_text`; SOURCE names the file in errors."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding.removesuffix("-sig")), encoding
            except UnicodeDecodeError as error:
                line = data[: error.start].count("\n".encode(encoding.removesuffix("-sig"))) + 1
                raise UserError(
                    say(
                        "import.file.bom_mismatch",
                        file=source,
                        encoding=_NAMES[encoding],
                        line=line,
                    ),
                    details=[say(_SAVE_AS_UTF8)],
                ) from None
    if b"\x00" in data[:4096]:
        raise UserError(
            say("import.file.null_bytes", file=source),
            details=[say(_SAVE_AS_UTF8)],
        )
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as error:
        bad_line = data[: error.start].count(b"\n") + 1
    utf8_line = _first_utf8_line(data)
    if utf8_line is not None:
        raise UserError(
            say(
                "import.file.mixed_encodings",
                file=source,
                utf8_line=utf8_line,
                bad_line=bad_line,
            ),
            details=[say(_SAVE_AS_UTF8)],
        )
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UserError(
            say("import.file.unknown_encoding", file=source, line=line),
            details=[say(_SAVE_AS_UTF8)],
        ) from None


def _first_utf8_line(data: bytes) -> int | None:
    """The number of the first line holding valid non-ASCII UTF-8, or None."""
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            continue
        return number
    return None


def sniff_delimiter(header_line: str) -> str:
    """The separator used in HEADER_LINE: `;`, `,` or tab, whichever occurs most (`,` if none)."""
    counts = {delimiter: header_line.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_table(path: Path) -> Table:
    """Read a CSV or XLSX file (format judged by content) into a Table."""
    fmt = detect_format(path)
    if fmt == FORMAT_XLSX:
        return read_xlsx(path)
    if fmt == FORMAT_GV100AD:
        raise UserError(
            say("import.file.is_gv100ad", file=file_label(path)),
            details=[say("import.file.import_gv100ad")],
        )
    return read_csv(path)


def read_csv(path: Path) -> Table:
    """Read a CSV file: encoding and separator detected, empty rows skipped, sizes capped."""
    text, encoding = read_text(path)
    text, delimiter, line = _separator_hint(text)
    if delimiter is None:
        delimiter = sniff_delimiter(next((x for x in text.splitlines() if x.strip()), ""))
    source = file_label(path)
    csv.field_size_limit(MAX_CELL_CHARS * 4 + 2)  # a larger cell is reported by _limited
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    offset = line - 1

    def numbered() -> Iterator[tuple[int, list[str]]]:
        current = line
        try:
            for cells in reader:
                yield current, cells
                current = offset + reader.line_num + 1
        except csv.Error:
            raise UserError(
                say("import.file.field_unclosed", file=source, line=current, limit=MAX_CELL_CHARS)
            ) from None

    records = list(_limited(numbered(), source))
    return _table_from_records(source, FORMAT_CSV, records, encoding, delimiter)


def _limited(
    records: Iterable[tuple[int, Sequence[Any]]], source: str
) -> Iterator[tuple[int, list[str]]]:
    """RECORDS as text cells, refused with a German error beyond the row, column and cell caps."""
    for number, values in records:
        if number > MAX_ROWS:
            raise UserError(
                say("import.file.too_many_rows", file=source, limit=_grouped(MAX_ROWS)),
                details=[say("import.file.split_file")],
            )
        cells = [cell_text(value) for value in values]
        while cells and not cells[-1]:
            cells.pop()
        if len(cells) > MAX_COLUMNS:
            raise UserError(
                say(
                    "import.file.too_many_columns",
                    file=source,
                    line=number,
                    columns=len(cells),
                    limit=MAX_COLUMNS,
                )
            )
        for column, cell in enumerate(cells, start=1):
            if len(cell) > MAX_CELL_CHARS:
                raise UserError(
                    say(
                        "import.file.cell_too_long",
                        file=source,
                        line=number,
                        column=column,
                        length=_grouped(len(cell)),
                        limit=_grouped(MAX_CELL_CHARS),
                        cell=shorten(cell, 40),
                    )
                )
        yield number, cells


def _separator_hint(text: str) -> tuple[str, str | None, int]:
    """Strip Excel's `sep=;` first line: (rest of text, separator or None, first line number)."""
    first, _, rest = text.partition("\n")
    if re.fullmatch(r"sep=.", first.strip()):
        return rest, first.strip()[4], 2
    return text, None, 1


def read_xlsx(path: Path) -> Table:
    """Read the first worksheet of an XLSX file, streaming and within the caps.

    The sheet's declared dimension is ignored: it may claim a million rows (openpyxl would
    pad every row to it) or too few (openpyxl would stop early and import nothing).
    """
    from openpyxl import load_workbook

    source = file_label(path)
    _check_xlsx_sizes(path, source)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for broken files
        raise UserError(
            say("import.file.excel_unreadable", file=source, error=shorten(error, 200))
        ) from None
    try:
        sheet = workbook.worksheets[0]
        if hasattr(sheet, "reset_dimensions"):
            sheet.reset_dimensions()
        rows = enumerate(sheet.iter_rows(values_only=True), start=1)
        records = list(_limited(((n, v) for n, v in rows if any(x is not None for x in v)), source))
    except UserError:
        raise
    except Exception as error:
        raise UserError(
            say("import.file.excel_unreadable", file=source, error=shorten(error, 200))
        ) from None
    finally:
        workbook.close()
    return _table_from_records(source, FORMAT_XLSX, records, None, None)


def _check_xlsx_sizes(path: Path, source: str) -> None:
    """Refuse an XLSX over the file size cap or whose parts unpack beyond the cap (zip bomb)."""
    import zipfile

    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(
            say(
                "import.file.too_large",
                file=source,
                size=size // 1_000_000,
                limit=MAX_FILE_BYTES // 1_000_000,
            )
        )
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as error:
        raise UserError(say("import.file.excel_damaged", file=source, error=error)) from None
    if unpacked > MAX_XLSX_UNPACKED_BYTES:
        raise UserError(
            say(
                "import.file.excel_unpacks",
                file=source,
                size=unpacked // 1_000_000,
                limit=MAX_XLSX_UNPACKED_BYTES // 1_000_000,
            )
        )


def _grouped(value: int) -> str:
    """An integer with German thousands separators (200.000)."""
    return f"{value:,}".replace(",", ".")


def cell_text(value: Any) -> str:
    """A cell value as stripped text: integral floats without `.0`, dates as ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "ja" if value else "nein"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _table_from_records(
    source: str,
    fmt: str,
    records: Iterable[tuple[int, Sequence[str]]],
    encoding: str | None,
    delimiter: str | None,
) -> Table:
    """A Table from numbered raw records: first non-empty one is the header."""
    cleaned = [(n, tuple(str(c).strip() for c in cells)) for n, cells in records]
    cleaned = [(n, cells) for n, cells in cleaned if any(cells)]
    if not cleaned:
        raise UserError(say("import.file.empty", file=source))
    header_line, headers = cleaned[0]
    rows = tuple(Row(n, cells) for n, cells in cleaned[1:])
    return Table(source, fmt, headers, rows, header_line, encoding, delimiter)


def normalise_header(text: str) -> str:
    """A header as lowercase snake_case ASCII, e.g. `Baurechtsbehörde` → `baurechtsbehoerde`."""
    lowered = unicodedata.normalize("NFKC", text).strip().lower().translate(_UMLAUTS)
    ascii_text = unicodedata.normalize("NFKD", lowered).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text).strip("_")


def header_match_key(text: str) -> str:
    """A key for matching headers: snake_case, umlauts folded (ue/ü/u alike), no separators."""
    key = normalise_header(text).replace("_", "")
    return key.replace("ae", "a").replace("oe", "o").replace("ue", "u")


def map_columns(headers: Sequence[str], aliases: Mapping[str, Sequence[str]]) -> ColumnMap:
    """Assign columns to fields by ALIASES (earlier alias wins); the rest become extras."""
    keys = [header_match_key(h) for h in headers]
    column_map = ColumnMap(tuple(headers))
    taken: set[int] = set()
    for name, names in aliases.items():
        for alias in names:
            index = _first_free(keys, header_match_key(alias), taken)
            if index is not None:
                column_map.fields[name] = index
                taken.add(index)
                break
    for index, header in enumerate(headers):
        if index not in taken and header:
            key = normalise_header(header) or f"spalte_{index + 1}"
            while key in column_map.extras:
                key += "_2"
            column_map.extras[key] = index
    return column_map


def _first_free(keys: Sequence[str], wanted: str, taken: set[int]) -> int | None:
    """The first index of WANTED in KEYS that is not TAKEN."""
    for index, key in enumerate(keys):
        if key == wanted and index not in taken:
            return index
    return None


def require_fields(table: Table, columns: ColumnMap, required: Mapping[str, str]) -> None:
    """Raise a UserError naming the missing columns when a REQUIRED field has no column."""
    missing = [label for name, label in required.items() if not columns.has(name)]
    if missing:
        names = ", ".join(say("import.file.column_name", name=label) for label in missing)
        sentence = say(
            "import.file.missing_column" if len(missing) == 1 else "import.file.missing_columns",
            file=table.source,
            names=names,
        )
        raise UserError(sentence, details=[found_columns(table)])


def found_columns(table: Table) -> str:
    """The detail line naming the columns TABLE has (or that it has none)."""
    found = ", ".join(say("import.file.column_name", name=h) for h in table.headers if h)
    return say(
        "import.file.found_columns",
        line=table.header_line,
        found=found or say("import.file.no_columns"),
    )
