"""Helpers shared by the CLI commands: output as table or JSON, parsing of dates."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import typer

from efa_rollout.errors import UserError
from efa_rollout.output_safety import json_safe, terminal_text
from efa_rollout.texts import say


def print_json(data: Any) -> None:
    """Print DATA as indented JSON (dates as ISO strings)."""
    typer.echo(json_safe(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default)))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print ROWS as a plain, aligned text table."""
    cells = [
        [("" if v is None else terminal_text(v, keep_newlines=False)) for v in row] for row in rows
    ]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    typer.echo("  ".join("-" * w for w in widths))
    for row in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def parse_date(value: str, *, option: str) -> date:
    """A date from YYYY-MM-DD or DD.MM.YYYY."""
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise UserError(say("cli.parse.not_a_date", option=option, value=value))


def parse_as_of(value: str | None) -> datetime | None:
    """An aware datetime from --as-of (date or ISO datetime, local time zone if none given)."""
    from efa_rollout.settings import get_settings

    if value is None:
        return None
    zone = get_settings().zone
    try:
        # A bare date means 09:00 local time: a working morning, inside the sending window.
        parsed = datetime.combine(parse_date(value, option="--as-of"), datetime.min.time())
        parsed = parsed.replace(hour=9)
    except UserError:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise UserError(say("cli.parse.not_a_moment", value=value)) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)
