"""Render the mails of a batch once per distinct content, with stand-ins for the municipality.

The mails of one batch mostly differ only in the municipality's AGS, name and label and in the
salutation. `RenderOnce` renders a mail once with stand-ins for those four values and fills
in each mail's own values afterwards: the same text as rendering every mail, byte for byte, as
long as the templates only print those values (`{{ municipality.label }}`, `{{ salutation }}`)
and never test, filter or pass them on. `stand_in_safe` checks that on the templates' syntax
trees; a kind whose templates do anything else, and a value that rendering would change (line
breaks, doubled spaces, empty), are rendered per mail as before. The first mail of every
content is also rendered the ordinary way and with a second set of stand-ins, and both must
agree with the filled-in text, else that content is rendered per mail too.
"""

from __future__ import annotations

import functools
import io
import pickle
from collections.abc import Callable, Hashable, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, TemplateError, nodes
from markupsafe import escape

from efa_rollout.mail.render import (
    MAIL_TEMPLATES_DIR,
    RenderedMail,
    _html_env,
    _text_env,
    one_line,
    render_mail,
    templates_version,
)

#: The per-mail values, as the templates name them.
MUNICIPALITY_FIELDS = ("ags", "name", "label")
PER_MAIL = (*(f"municipality.{f}" for f in MUNICIPALITY_FIELDS), "salutation")
#: Private-use characters: no template text or escaping produces or changes them.
_MARKS = "\ue000\ue001\ue002\ue003"
_STAND_INS = {name: f"\ue000{i}\ue001" for i, name in enumerate(PER_MAIL)}
_CHECK_STAND_INS = {name: f"\ue002{i}\ue003" for i, name in enumerate(PER_MAIL)}


class NotCacheable(Exception):
    """A value in a mail's inputs that cannot be part of a cache key."""


#: Dates and times with their zones pickle exactly too; so do the classes that rebuild them.
_KEY_TYPES = frozenset({date, datetime, timedelta, timezone, ZoneInfo})
_KEY_REBUILDERS = frozenset({*_KEY_TYPES, ZoneInfo._unpickle, getattr})  # type: ignore[attr-defined]


class _KeyPickler(pickle.Pickler):
    """Pickles the plain types and dates only: equal bytes then mean equal values."""

    def reducer_override(self, obj: Any) -> Any:
        # Called for every type besides None, bool, int, float, str, bytes, list, tuple, dict,
        # set and frozenset, which pickle exactly (1, True and 1.0 apart, dict order kept).
        if type(obj) in _KEY_TYPES or (isinstance(obj, Hashable) and obj in _KEY_REBUILDERS):
            return NotImplemented
        raise NotCacheable(type(obj).__name__)


def frozen(value: Any) -> bytes:
    """VALUE as a key: two keys are equal only if the values are (and print) the same.

    Equal values may give different keys (shared objects, set order): that only costs a
    rendering more.
    """
    buffer = io.BytesIO()
    try:
        _KeyPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except (pickle.PicklingError, TypeError) as error:
        raise NotCacheable(str(error)) from None
    return buffer.getvalue()


def plain_value(value: str) -> bool:
    """Whether VALUE comes out of rendering unchanged wherever it stands (one line, trimmed)."""
    return bool(value) and value == one_line(value) and not any(m in value for m in _MARKS)


# --- the guard: the templates only print the per-mail values ----------------------------------


class _Unsafe(Exception):
    pass


def _is_field(node: nodes.Node) -> bool:
    """`municipality.label` / `municipality['label']` / `salutation`, nothing around it."""
    if isinstance(node, nodes.Name):
        return node.name == "salutation" and node.ctx == "load"
    if isinstance(node, nodes.Getattr):
        attribute = node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        attribute = node.arg.value
    else:
        return False
    inner = node.node
    return (
        isinstance(inner, nodes.Name)
        and inner.name == "municipality"
        and attribute in MUNICIPALITY_FIELDS
    )


def _visit(node: nodes.Node, printed: bool, references: list[nodes.Node]) -> None:
    """Raise _Unsafe where NODE uses a per-mail value other than printing it as it is.

    PRINTED: output here reaches the mail unchanged (not inside a filter block, a macro, a
    captured `set`, a call block, an autoescape switch).
    """
    if isinstance(node, nodes.Name) and node.name in ("municipality", "salutation"):
        raise _Unsafe(f"line {node.lineno}")
    if isinstance(node, nodes.Output):
        for part in node.nodes:
            if not (printed and _is_field(part)):
                _visit(part, False, references)
        return
    if isinstance(node, nodes.Extends | nodes.Include | nodes.Import | nodes.FromImport):
        if isinstance(node, nodes.Include) and not printed:
            raise _Unsafe(f"line {node.lineno}: include")
        references.append(node.template)
        return
    if isinstance(node, nodes.If):
        tests: list[nodes.Node] = [node.test]
        bodies: list[nodes.Node] = [*node.body, *node.elif_, *node.else_]
    elif isinstance(node, nodes.For):
        tests = [n for n in (node.target, node.iter, node.test) if n is not None]
        bodies = [*node.body, *node.else_]
    else:
        keeps = isinstance(node, nodes.Template | nodes.Block | nodes.Scope)
        tests, bodies = [], []
        for child in node.iter_child_nodes():
            (bodies if keeps else tests).append(child)
    for child in tests:
        _visit(child, False, references)
    for child in bodies:
        _visit(child, printed, references)


def _template_names(env: Environment, name: str) -> Iterator[str]:
    """NAME and every template it extends, includes or imports; raises _Unsafe if unsafe."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        assert env.loader is not None
        source = env.loader.get_source(env, current)[0]
        references: list[nodes.Node] = []
        _visit(env.parse(source, current), True, references)
        for reference in references:
            if not isinstance(reference, nodes.Const) or not isinstance(reference.value, str):
                raise _Unsafe(f"{current}: a template name computed at render time")
            todo.append(reference.value)
        yield current


def template_problem(kind: str, folder: Path = MAIL_TEMPLATES_DIR) -> str | None:
    """Why KIND's templates cannot be rendered with stand-ins (None: they can)."""
    return _template_problem(kind, folder, templates_version(folder))


@functools.lru_cache(maxsize=64)
def _template_problem(kind: str, folder: Path, version: int) -> str | None:
    pairs = [
        (_text_env(folder), f"{kind}.subject.txt"),
        (_text_env(folder), f"{kind}.txt"),
        (_html_env(folder), f"{kind}.html"),
    ]
    for env, name in pairs:
        try:
            for _ in _template_names(env, name):
                pass
        except _Unsafe as error:
            return f"{name}: {error}"
        except (TemplateError, OSError) as error:  # missing or broken: rendering will say so
            return f"{name}: {type(error).__name__}"
    return None


def stand_in_safe(kind: str, folder: Path = MAIL_TEMPLATES_DIR) -> bool:
    """Whether KIND's templates (with what they extend and include) only print the values."""
    return template_problem(kind, folder) is None


# --- filling in -------------------------------------------------------------------------------


def _with_values(context: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    municipality = dict(context["municipality"] or {})
    for field in MUNICIPALITY_FIELDS:
        municipality[field] = values[f"municipality.{field}"]
    return {**context, "municipality": municipality, "salutation": values["salutation"]}


def fill(rendered: RenderedMail, stand_ins: dict[str, str], values: dict[str, str]) -> RenderedMail:
    """RENDERED with every stand-in replaced by its value (escaped in the HTML)."""
    subject, text, html = rendered.subject, rendered.text, rendered.html
    for name, mark in stand_ins.items():
        value = values[name]
        if mark in subject:
            subject = subject.replace(mark, value)
        text = text.replace(mark, value)
        html = html.replace(mark, str(escape(value)))
    return RenderedMail(subject, text, html)


class RenderOnce:
    """Renders each distinct content of a batch once; see the module docstring."""

    def __init__(self, folder: Path = MAIL_TEMPLATES_DIR) -> None:
        self.folder = folder
        #: (kind, key) → the context and rendering with stand-ins; None: render per mail.
        self._done: dict[Hashable, tuple[dict[str, Any], RenderedMail] | None] = {}
        self._safe_kinds: dict[str, bool] = {}
        self.rendered = 0  # how many mails were rendered with Jinja (for tests and benchmarks)

    def compose(
        self,
        kind: str,
        key: Hashable | None,
        values: dict[str, str],
        make_context: Callable[[], dict[str, Any]],
    ) -> tuple[dict[str, Any], RenderedMail]:
        """The context and rendering of one mail whose inputs besides VALUES are KEY.

        KEY must determine the context MAKE_CONTEXT builds, apart from the per-mail VALUES
        (None: not cacheable). VALUES: every name of PER_MAIL → this mail's value.
        """
        if key is None or not self._safe(kind) or not all(map(plain_value, values.values())):
            return self._render(kind, make_context())
        if (kind, key) not in self._done:
            context, rendered = self._render(kind, make_context())
            self._learn(kind, key, context, rendered, values)
            return context, rendered
        done = self._done[(kind, key)]
        if done is None:
            return self._render(kind, make_context())
        context, template = done
        return _with_values(context, values), fill(template, _STAND_INS, values)

    def _safe(self, kind: str) -> bool:
        """`stand_in_safe`, looked up once per kind and batch."""
        if kind not in self._safe_kinds:
            self._safe_kinds[kind] = stand_in_safe(kind, self.folder)
        return self._safe_kinds[kind]

    def _render(self, kind: str, context: dict[str, Any]) -> tuple[dict[str, Any], RenderedMail]:
        self.rendered += 1
        return context, render_mail(kind, context, folder=self.folder)

    def _learn(
        self,
        kind: str,
        key: Hashable,
        context: dict[str, Any],
        rendered: RenderedMail,
        values: dict[str, str],
    ) -> None:
        """Render with stand-ins and keep it, if the stand-ins stand in exactly (else None)."""
        _, template = self._render(kind, _with_values(context, _STAND_INS))
        _, check = self._render(kind, _with_values(context, _CHECK_STAND_INS))
        exact = (
            fill(template, _STAND_INS, values) == rendered
            and fill(template, _STAND_INS, _CHECK_STAND_INS) == check
        )
        self._done[(kind, key)] = (context, template) if exact else None
