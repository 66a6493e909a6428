"""Render mail templates: subject and text without escaping, HTML autoescaped, all strict."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    UndefinedError,
)
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from markupsafe import Markup, escape

from efa_rollout import TEMPLATES_DIR
from efa_rollout.errors import UserError

MAIL_TEMPLATES_DIR = TEMPLATES_DIR / "mail"

#: Every kind of mail there is a template for.
MAIL_KINDS = (
    "information_request",
    "summary",
    "reminder",
    "escalation",
    "go_live",
    "after_care",
    "weekly_report",
    "submission_confirmation",
)

WEEKDAYS = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x00-\x1f\x7f\x85\u2028\u2029]+")


class MailRenderError(UserError):
    """A mail template (or a definition's paragraph) could not be rendered."""


@dataclass(frozen=True)
class RenderedMail:
    """Subject, plain text and HTML of one mail."""

    subject: str
    text: str
    html: str


def as_date(value: date | datetime | str) -> date:
    """A date from a date, a datetime or an ISO string."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def format_date(value: date | datetime | str) -> str:
    """DD.MM.YYYY."""
    return as_date(value).strftime("%d.%m.%Y")


def format_deadline(value: date | datetime | str) -> str:
    """A deadline with its weekday: 'Freitag, 15.03.2025'."""
    day = as_date(value)
    return f"{WEEKDAYS[day.weekday()]}, {day.strftime('%d.%m.%Y')}"


def format_time(value: datetime) -> str:
    """HH:MM of an aware datetime in the configured time zone."""
    from efa_rollout.settings import get_settings

    return value.astimezone(get_settings().zone).strftime("%H:%M")


def one_line(value: str) -> str:
    """VALUE with line breaks and control characters replaced by single spaces."""
    return " ".join(_LINE_BREAKS.sub(" ", value).split())


def html_paragraphs(value: str) -> Markup:
    """Plain text as escaped HTML paragraphs (blank line: new paragraph; newline: <br>)."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", value.replace("\r\n", "\n")) if b.strip()]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(line) for line in b.split("\n")))
        for b in blocks
    )


def _install_filters(env: Environment) -> Environment:
    env.filters["datum"] = format_date
    env.filters["frist"] = format_deadline
    env.filters["uhrzeit"] = format_time
    return env


@functools.cache
def _text_env(folder: Path = MAIL_TEMPLATES_DIR) -> Environment:
    env = Environment(
        loader=FileSystemLoader(folder),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return _install_filters(env)


@functools.cache
def _html_env(folder: Path = MAIL_TEMPLATES_DIR) -> Environment:
    env = Environment(
        loader=FileSystemLoader(folder),
        undefined=StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["absaetze"] = html_paragraphs
    return _install_filters(env)


@functools.cache
def _sandbox() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    _install_filters(env)
    return env


def render_paragraph(source: str, context: dict[str, Any]) -> str:
    """A definition's user-supplied paragraph, rendered in the sandbox (plain text)."""
    try:
        return _sandbox().from_string(source).render(context).strip()
    except SecurityError as error:
        raise MailRenderError(
            f"Zusatztext der Kampagnendefinition enthält einen unzulässigen Ausdruck: {error}"
        ) from None
    except (UndefinedError, TemplateError) as error:
        raise MailRenderError(
            f"Zusatztext der Kampagnendefinition kann nicht erstellt werden: {error}",
            details=[f"Verfügbare Platzhalter: {', '.join(sorted(context))}"],
        ) from None


def render_mail(
    kind: str, context: dict[str, Any], *, folder: Path = MAIL_TEMPLATES_DIR
) -> RenderedMail:
    """Subject, text and HTML of KIND; a missing variable raises MailRenderError."""
    if kind not in MAIL_KINDS and not (folder / f"{kind}.txt").exists():
        raise MailRenderError(f"Unbekannte Mail-Art »{kind}« (bekannt: {', '.join(MAIL_KINDS)}).")
    try:
        subject = _text_env(folder).get_template(f"{kind}.subject.txt").render(context)
        text = _text_env(folder).get_template(f"{kind}.txt").render(context)
        html = _html_env(folder).get_template(f"{kind}.html").render(context)
    except TemplateNotFound as error:
        raise MailRenderError(f"Mail-Vorlage {error.name} fehlt in {folder}.") from None
    except UndefinedError as error:
        raise MailRenderError(
            f"Mail »{kind}« kann nicht erstellt werden: {error.message}",
            details=["Es wurde nichts in den Postausgang gestellt."],
        ) from None
    subject = one_line(subject)
    if not subject:
        raise MailRenderError(f"Mail »{kind}«: der Betreff ist leer.")
    return RenderedMail(subject=subject, text=_tidy_text(text), html=html)


def _tidy_text(text: str) -> str:
    """At most one blank line in a row, no trailing spaces, one final newline."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    tidy = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return tidy.strip("\n") + "\n"
