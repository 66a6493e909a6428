"""The portal's words from ``templates/portal/_messages.txt``, loaded once per application."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from efa_rollout import TEMPLATES_DIR
from efa_rollout.services.contacts import Problem

__all__ = ["MESSAGES_TEMPLATE", "PORTAL_TEMPLATES", "PortalTexts"]

PORTAL_TEMPLATES = TEMPLATES_DIR / "portal"
MESSAGES_TEMPLATE = "_messages.txt"

Notice = tuple[str, str]  # kind (success, info, warning), text


class PortalTexts:
    """Notices, error pages, labels and validation messages, looked up by name."""

    def __init__(self, directory: Path = PORTAL_TEMPLATES) -> None:
        # Plain text: the pages escape these strings when they show them (escaping here too
        # would show `&amp;` to the reader).
        env = Environment(
            loader=FileSystemLoader(directory), autoescape=False, undefined=StrictUndefined
        )
        self._module = env.get_template(MESSAGES_TEMPLATE).module

    def _table(self, name: str) -> Mapping[Any, Any]:
        table: Mapping[Any, Any] = getattr(self._module, name)  # a `{% set %}` of the template
        return table

    def say(self, name: str, **params: Any) -> str:
        """The message NAME (a macro of the messages template) filled in with PARAMS."""
        return str(getattr(self._module, name)(**params)).strip()

    def problem(self, problem: Problem) -> str:
        """The wording of a rule the services found broken."""
        return self.say(problem.code, **problem.params)

    def has_error_page(self, status: int) -> bool:
        """True when STATUS has its own error page text."""
        return status in self._table("error_pages")

    def error_page(self, status: int) -> tuple[str, str]:
        """Title and text of the error page for STATUS (500's for an unknown status)."""
        pages = self._table("error_pages")
        title, text = pages.get(status, pages[500])
        return title, text

    def notice(self, key: str) -> Notice | None:
        """The notice after a redirect with ``?ok=KEY``, if KEY is one."""
        found = self._table("notices").get(key)
        return (found[0], found[1]) if found else None

    def label(self, table: str, key: str) -> str:
        """The label KEY of TABLE (date_labels, source_labels, read_only); KEY if none."""
        return str(self._table(table).get(key, key))

    def labels(self, table: str) -> dict[str, str]:
        """The whole label TABLE, in the template's order."""
        return dict(self._table(table))
