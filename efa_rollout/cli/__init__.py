"""The `efa` command line. Read-only commands never import Prefect, so they answer fast.

A command group's module is imported when the group runs, or for a help page that lists it:
`efa campaign list` loads `cli.campaign` alone, not the other eighteen modules, and Typer builds
the click commands of that group only (together ~35 ms of every call).
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup
from typer.models import TyperInfo

from efa_rollout.errors import UserError
from efa_rollout.output_safety import TerminalSafeStream

#: The top-level commands, then the groups: the order Typer lists them in (commands first).
#: Name → "module:attribute" in this package.
COMMANDS = {
    "config": "config:show_config",
    "serve": "serve:serve",
    "up": "up:up",
    "demo": "demo:demo",
    "remind": "remind:remind",
    "report": "report:report",
    "history": "history:history",
}
GROUPS = {
    "db": "db:app",
    "municipalities": "directory:municipalities_app",
    "contacts": "directory:contacts_app",
    "campaign": "campaign:app",
    "enrolment": "enrolment:app",
    "mail": "mail:app",
    "response": "collection:response_app",
    "checklist": "collection:checklist_app",
    "portal": "portal:app",
    "summary": "summary:app",
}


#: Commands that read and print, in a process of well under a second (`--help` of any command
#: too): they run in start-up mode (see `_start_quickly`).
QUICK = frozenset(
    {
        ("config",),
        ("history",),
        ("report",),
        ("campaign", "list"),
        ("campaign", "show"),
        ("campaign", "status"),
        ("campaign", "templates"),
        ("municipalities", "list"),
        ("contacts", "list"),
        ("mail", "outbox"),
        ("response", "show"),
        ("checklist", "show"),
        ("db", "status"),
    }
)


def is_quick(args: list[str]) -> bool:
    """Whether `efa ARGS` is a quick, read-only command or a help page."""
    if not args or "--help" in args:
        return True
    words = [a for a in args if not a.startswith("-")]  # the root group takes no values
    return tuple(words[:1]) in QUICK or tuple(words[:2]) in QUICK


def _start_quickly() -> None:
    """Start-up mode for a short process: no cycle collector, no Pydantic plugin scan."""
    # Importing the ~550 modules of a database command runs the cycle collector ~180 times
    # over objects that all live until exit (50–70 ms, an eighth of the command); reference
    # counting still frees everything else. Pydantic looks for plugins in every installed
    # distribution's entry points (~10 ms); we install none. Long-running commands keep both.
    gc.disable()
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def _attribute(spec: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


class _Commands(MutableMapping[str, Any]):
    """A group's commands by name, each built (its module imported) on first access."""

    def __init__(self, loaders: dict[str, Callable[[], Any]]) -> None:
        self._loaders = loaders
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaders:
            raise KeyError(name)
        if name not in self._built:
            try:
                self._built[name] = self._loaders[name]()
            except KeyError as error:  # not "no such command": a fault while loading it
                raise RuntimeError(f"efa {name}: {error!r}") from error
        return self._built[name]

    def __contains__(self, name: object) -> bool:
        return name in self._loaders

    def __setitem__(self, name: str, command: Any) -> None:
        self._loaders[name] = lambda: command
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaders[name]
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


def _command(name: str, spec: str) -> Callable[[], Any]:
    def load() -> Any:
        scratch = typer.Typer()  # as app.command(name) registers it
        scratch.command(name)(_attribute(spec))
        return typer.main.get_command_from_info(
            scratch.registered_commands[0],
            pretty_exceptions_short=app.pretty_exceptions_short,
            rich_markup_mode=app.rich_markup_mode,
        )

    return load


def _group(name: str, spec: str) -> Callable[[], Any]:
    def load() -> Any:
        return typer.main.get_group_from_info(
            TyperInfo(_attribute(spec), name=name),  # as app.add_typer(…, name=name)
            pretty_exceptions_short=app.pretty_exceptions_short,
            rich_markup_mode=app.rich_markup_mode,
            suggest_commands=app.suggest_commands,
        )

    return load


class _LazyGroup(TyperGroup):
    """The root group: its commands are the lazily built COMMANDS and GROUPS."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        loaders = {name: _command(name, spec) for name, spec in COMMANDS.items()}
        loaders |= {name: _group(name, spec) for name, spec in GROUPS.items()}
        registered = dict(self.commands)  # added with @app.command (plugins, tests): kept
        self.commands = _Commands(loaders)
        for name, command in registered.items():
            self.commands[name] = command


app = typer.Typer(
    cls=_LazyGroup,
    help="efa-rollout – EfA-Onlinedienste in den Gemeinden eines Landkreises einführen.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Nothing to do before a command (Typer makes a group of an app with a callback)."""


def main() -> None:
    """Entry point of the `efa` console script."""
    # Every line the CLI prints may carry directory or portal text: one filter for all of it.
    sys.stdout = TerminalSafeStream(sys.stdout)
    sys.stderr = TerminalSafeStream(sys.stderr)
    if is_quick(sys.argv[1:]):
        _start_quickly()
    try:
        app()
    except UserError as error:
        typer.echo(error.render(), err=True)
        sys.exit(error.exit_code)
