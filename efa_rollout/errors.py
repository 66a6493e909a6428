"""Errors meant for the coordinator: German message, non-zero exit, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message is formal German and says what and where."""

    exit_code = 1

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def render(self) -> str:
        """The message with its details, one per line."""
        lines = [f"Fehler: {self.message}"]
        lines.extend(f"  {line}" for line in self.details)
        return "\n".join(lines)
