"""Render mail templates: subject and text without escaping, HTML autoescaped, all strict."""

from __future__ import annotations

import contextvars
import functools
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from jinja2.utils import Namespace
from markupsafe import Markup, escape

from efa_rollout import TEMPLATES_DIR
from efa_rollout.domain.text import german_date, german_weekday_date
from efa_rollout.errors import UserError
from efa_rollout.output_safety import shorten

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

_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x00-\x1f\x7f\x85\u2028\u2029]+")


class MailRenderError(UserError):
    """A mail template (or a definition's paragraph) could not be rendered."""


@dataclass(frozen=True)
class RenderedMail:
    """Subject, plain text and HTML of one mail."""

    subject: str
    text: str
    html: str


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
    env.filters["datum"] = german_date
    env.filters["frist"] = german_weekday_date
    env.filters["uhrzeit"] = format_time
    return env


#: How long compiled mail templates are used without looking at the files again. Jinja's own
#: auto-reload stats every template (and its base) on every render: ~0.1 ms per mail in a batch.
#: After that the folder is looked at once, and only when a file changed are they compiled anew.
RELOAD_SECONDS = 2.0


def _epoch() -> int:
    return int(time.monotonic() // RELOAD_SECONDS)


class _MailEnvironment(Environment):
    """Jinja's Environment; `a.b` on a plain dict without such a method is a key lookup directly.

    Jinja tries the attribute first and catches the AttributeError before it looks up the key:
    the mail contexts are dicts, so that exception was raised ~100 times per mail. The result
    is the same: a dict's own attributes are exactly those of its class.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute in obj and not hasattr(dict, attribute):
            return obj[attribute]
        return super().getattr(obj, attribute)


@functools.lru_cache(maxsize=8)
def _text_env(folder: Path = MAIL_TEMPLATES_DIR) -> Environment:
    env = _MailEnvironment(
        loader=FileSystemLoader(folder),
        auto_reload=False,
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return _install_filters(env)


@functools.lru_cache(maxsize=8)
def _html_env(folder: Path = MAIL_TEMPLATES_DIR) -> Environment:
    env = _MailEnvironment(
        loader=FileSystemLoader(folder),
        auto_reload=False,
        undefined=StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["absaetze"] = html_paragraphs
    return _install_filters(env)


# Limits for the coordinator's own paragraphs (definitions' `mail:`): a paragraph is a few
# sentences, so these are generous, and they keep a loop or a string expansion from eating the
# machine while thousands of mails are rendered.
MAX_PARAGRAPH_CHARS = 10_000
MAX_RANGE_ITEMS = 1_000
MAX_NUMBER_ARGUMENT = 10_000
MAX_POWER_EXPONENT = 64
RENDER_SECONDS = 1.0

_budget: contextvars.ContextVar[_Budget] = contextvars.ContextVar("paragraph_budget")


class ParagraphLimit(Exception):
    """A coordinator's paragraph went beyond one of the rendering limits (German reason)."""


@dataclass
class _Budget:
    """What one rendering of a paragraph may still use."""

    deadline: float
    range_items: int = MAX_RANGE_ITEMS


def _check_size(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict) and len(value) > MAX_PARAGRAPH_CHARS:
        raise ParagraphLimit(f"ein Zwischenergebnis ist länger als {MAX_PARAGRAPH_CHARS} Zeichen")
    return value


def _check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and abs(value) > MAX_NUMBER_ARGUMENT:
            raise ParagraphLimit(f"Zahl {shorten(value, 30)} als Argument zu groß")


def _bounded_range(*args: int) -> range:
    """`range` with a budget of MAX_RANGE_ITEMS items per paragraph, all loops together."""
    budget = _budget.get()
    _check_arguments(args, {})
    items = range(*args)
    budget.range_items -= len(items)
    if budget.range_items < 0:
        raise ParagraphLimit(f"Schleifen über mehr als {MAX_RANGE_ITEMS} Werte")
    return items


def _guard_filter(function: Any) -> Any:
    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments(args[1:], kwargs)
        return _check_size(function(*args, **kwargs))

    return guarded


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, plus limits on size, numbers, loops and time (see the constants)."""

    intercepted_binops = frozenset({"*", "**", "+", "//", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER_EXPONENT:
            raise ParagraphLimit(f"Potenz mit Exponent {shorten(right, 30)} zu groß")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sequence = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sequence and len(seq) * times > MAX_PARAGRAPH_CHARS:
                    raise ParagraphLimit(
                        f"Vervielfachung auf mehr als {MAX_PARAGRAPH_CHARS} Zeichen"
                    )
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, int) and result.bit_length() > 256:
            raise ParagraphLimit("Zahl mit mehr als 77 Stellen")
        return _check_size(result)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_arguments(args, kwargs)
        result = _check_size(super().call(__context, __obj, *args, **kwargs))
        _check_size(getattr(__obj, "__self__", None))  # list.extend(...) grows its list
        return result


class _BoundedNamespace(Namespace):
    """`namespace()` whose attributes stay within the size limit (`set ns.s = ns.s ~ ns.s`)."""

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, _check_size(value))


@functools.cache
def _sandbox() -> BoundedSandbox:
    env = BoundedSandbox(undefined=StrictUndefined, autoescape=False)
    _install_filters(env)
    env.filters = {name: _guard_filter(f) for name, f in env.filters.items()}
    env.globals["range"] = _bounded_range
    env.globals["namespace"] = _BoundedNamespace
    return env


@functools.lru_cache(maxsize=256)
def compile_paragraph(source: str) -> Template:
    """SOURCE compiled in the sandbox; a syntax error raises MailRenderError naming the line."""
    try:
        return _sandbox().from_string(source)
    except TemplateSyntaxError as error:
        raise MailRenderError(
            f"Jinja-Syntaxfehler in Zeile {error.lineno}: {shorten(error.message, 200)}"
        ) from None


def _time_guard(deadline: float) -> Any:
    """A trace function stopping template code (only) once DEADLINE has passed."""

    def local(frame: Any, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise ParagraphLimit(f"Erstellung dauerte länger als {RENDER_SECONDS:g} s")
        return local

    def trace(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == "<template>" else None

    return trace


def _render_bounded(template: Template, context: dict[str, Any]) -> str:
    """TEMPLATE rendered within the limits: output size, loops, numbers, time."""
    deadline = time.monotonic() + RENDER_SECONDS
    token = _budget.set(_Budget(deadline))
    previous = sys.gettrace()
    sys.settrace(_time_guard(deadline))
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_PARAGRAPH_CHARS:
                raise ParagraphLimit(f"Ergebnis länger als {MAX_PARAGRAPH_CHARS} Zeichen")
            if time.monotonic() > deadline:
                raise ParagraphLimit(f"Erstellung dauerte länger als {RENDER_SECONDS:g} s")
            parts.append(chunk)
        return "".join(parts)
    finally:
        sys.settrace(previous)
        _budget.reset(token)


def render_paragraph(source: str, context: dict[str, Any]) -> str:
    """A definition's user-supplied paragraph, rendered in the bounded sandbox (plain text)."""
    template = compile_paragraph(source)
    try:
        return _render_bounded(template, context).strip()
    except ParagraphLimit as error:
        raise MailRenderError(
            f"Zusatztext der Kampagnendefinition überschreitet eine Grenze: {error}.",
            details=["Bitte vereinfachen Sie den Text unter `mail:` in der Definition."],
        ) from None
    except SecurityError as error:
        raise MailRenderError(
            "Zusatztext der Kampagnendefinition enthält einen unzulässigen Ausdruck: "
            f"{shorten(error, 200)}"
        ) from None
    except (UndefinedError, TemplateError) as error:
        raise MailRenderError(
            f"Zusatztext der Kampagnendefinition kann nicht erstellt werden: {shorten(error, 200)}",
            details=[f"Verfügbare Platzhalter: {', '.join(sorted(context))}"],
        ) from None
    except (ArithmeticError, ValueError, TypeError, LookupError, AttributeError) as error:
        raise MailRenderError(
            "Zusatztext der Kampagnendefinition: ein Ausdruck kann nicht berechnet werden "
            f"({type(error).__name__}: {shorten(error, 120)})."
        ) from None
    except (MemoryError, RecursionError):
        raise MailRenderError(
            "Zusatztext der Kampagnendefinition: ein Ausdruck braucht zu viel Speicher."
        ) from None


def render_mail(
    kind: str, context: dict[str, Any], *, folder: Path = MAIL_TEMPLATES_DIR
) -> RenderedMail:
    """Subject, text and HTML of KIND; a missing variable raises MailRenderError."""
    if kind not in MAIL_KINDS and not (folder / f"{kind}.txt").exists():
        raise MailRenderError(f"Unbekannte Mail-Art »{kind}« (bekannt: {', '.join(MAIL_KINDS)}).")
    try:
        subject_template, text_template, html_template = _templates(kind, folder, _epoch())
        subject = subject_template.render(context)
        text = text_template.render(context)
        html = html_template.render(context)
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


@functools.lru_cache(maxsize=64)
def _templates(kind: str, folder: Path, epoch: int) -> tuple[Template, Template, Template]:
    """Subject, text and HTML template of KIND, looked up again once per EPOCH."""
    text_env, html_env = _text_env(folder), _html_env(folder)
    if _folder_changed(folder, epoch):
        text_env.cache.clear()  # type: ignore[union-attr]  # a LRUCache with auto_reload off
        html_env.cache.clear()  # type: ignore[union-attr]
    return (
        text_env.get_template(f"{kind}.subject.txt"),
        text_env.get_template(f"{kind}.txt"),
        html_env.get_template(f"{kind}.html"),
    )


_seen_folders: dict[Path, tuple[tuple[str, int, int], ...]] = {}


@functools.lru_cache(maxsize=16)
def _folder_changed(folder: Path, epoch: int) -> bool:
    """Whether a file in FOLDER changed since the last look (once per FOLDER and EPOCH)."""
    try:
        files = tuple(
            sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir())
        )
    except OSError:
        files = ()
    changed = _seen_folders.get(folder) != files
    _seen_folders[folder] = files
    if changed:
        _versions[folder] = _versions.get(folder, 0) + 1
    return changed


_versions: dict[Path, int] = {}


def templates_version(folder: Path = MAIL_TEMPLATES_DIR) -> int:
    """A number that changes when a file in FOLDER changes (looked at once per 2 s)."""
    _folder_changed(folder, _epoch())
    return _versions.get(folder, 0)


def _tidy_text(text: str) -> str:
    """At most one blank line in a row, no trailing spaces, one final newline."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    tidy = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return tidy.strip("\n") + "\n"
