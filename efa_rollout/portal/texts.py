"""The portal's words, from the text catalogue (``templates/texts/portal.ini``)."""

from __future__ import annotations

from typing import Any

from efa_rollout import TEMPLATES_DIR, texts
from efa_rollout.services.contacts import Problem

__all__ = ["PORTAL_TEMPLATES", "PortalTexts"]

PORTAL_TEMPLATES = TEMPLATES_DIR / "portal"

Notice = tuple[str, str]  # kind (success, info, warning), text


class PortalTexts:
    """Notices, error pages, labels and validation messages, looked up by name."""

    # Plain text: the pages escape these strings when they show them (escaping here too would
    # show `&amp;` to the reader).

    def say(self, code: str, **params: Any) -> str:
        """The message CODE (``section.key`` of the catalogue) filled in with PARAMS."""
        return texts.say(code, **params)

    def problem(self, problem: Problem) -> str:
        """The wording of a rule the services found broken."""
        return texts.say(problem.code, **problem.params)

    def has_error_page(self, status: int) -> bool:
        """True when STATUS has its own error page text."""
        return str(status) in texts.catalogue().section("portal.error_title")

    def error_page(self, status: int) -> tuple[str, str]:
        """Title and text of the error page for STATUS (500's for an unknown status)."""
        key = str(status) if self.has_error_page(status) else "500"
        return texts.say(f"portal.error_title.{key}"), texts.say(f"portal.error_text.{key}")

    def notice(self, key: str) -> Notice | None:
        """The notice after a redirect with ``?ok=KEY``, if KEY is one."""
        kinds = texts.catalogue().section("portal.notice_kind")
        return (kinds[key], texts.say(f"portal.notice.{key}")) if key in kinds else None

    def label(self, table: str, key: str) -> str:
        """The label KEY of TABLE (date_labels, source_labels, read_only); KEY if none."""
        return self.labels(table).get(key, key)

    def labels(self, table: str) -> dict[str, str]:
        """The whole label TABLE (``portal.TABLE``), in the catalogue's order."""
        return dict(texts.catalogue().section(f"portal.{table}"))
