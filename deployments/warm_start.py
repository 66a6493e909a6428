"""Served flow runs forked from a warm process instead of a new interpreter each.

Prefect's runner starts a run of a flow it holds (`Runner.add_flow`, see `serving.serve_warm`)
with `run_flow_in_subprocess` (`prefect.runner._starter_direct`), which spawns a new Python
(`get_context("spawn")`); a run of a deployment added as such, as `prefect.serve` does, starts
as a new `python -m prefect.engine`. Either way each run imports Prefect and our flows again,
2–5 s of CPU on this machine before the flow starts.
`install` hands the runner the very same function with a `forkserver` context instead: one
server process imports Prefect's engine and the served flow modules once, and every run is a
`fork` of it, already imported.

What makes forking that server safe (tests/test_warm_start.py checks it):
- multiprocessing starts the forkserver as a new interpreter (exec, not fork), so it holds
  nothing of the serving process: no thread, event loop, client or open database of it.
- The preloaded modules create no engine, HTTP client, thread or event loop when imported
  (`efa_rollout.db` makes its engine on first use, Prefect its clients per run), so each run
  makes its own after the fork.
- Each run's settings come from the environment Prefect hands it, as for a spawned run: Prefect
  pickles the runner's environment into the run and builds a new settings object from it there.
- The runner cancels a run by signalling its pid and learns how it ended from its exit code;
  a forkserver child has its own pid, and its exit code reaches the runner through the
  forkserver (a kill as a negative code, as with spawn).
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import types
from collections.abc import Callable, Iterable
from functools import update_wrapper
from typing import Any

#: The process that imported this module: in a run forked from the warm server, the server's
#: pid (the run's parent); in a run started any other way, the run's own.
IMPORTED_BY = os.getpid()

#: Always in the warm server: the engine that runs the flow, and what a run of ours imports
#: only when it runs (found with PYTHONPROFILEIMPORTTIME=1 in the serving log: ~0.25 s of a
#: tick run at load 7). A name that no longer exists is skipped (forkserver ignores it).
ENGINE_MODULES = (
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.artifacts",
    "prefect.concurrency.sync",
    "prefect.utilities.visualization",
    "prefect._vendor.croniter",
    "prefect._internal.observers",
    "anyio._core._sockets",
    "anyio.streams.stapled",
    "sqlite3",
    "encodings.idna",
    "rich._emoji_codes",
)


def forked_warm() -> bool:
    """Whether this process is a run forked from the warm server (its parent imported us)."""
    return os.getppid() == IMPORTED_BY


class _Forkserver:
    """What Prefect's `run_flow_in_subprocess` sees as `multiprocessing`: its one use of that
    name, `multiprocessing.get_context("spawn")`, gets the forkserver context."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.context = context

    def get_context(self, method: str | None = None) -> multiprocessing.context.BaseContext:
        if method != "spawn":
            raise RuntimeError(f"Prefect fragt nach {method!r}: warm_start.py prüfen")
        return self.context


def warm_variant(
    function: Callable[..., Any], context: multiprocessing.context.BaseContext
) -> Callable[..., Any]:
    """FUNCTION (Prefect's, unchanged code) with its global `multiprocessing` meaning CONTEXT."""
    copy = types.FunctionType(
        function.__code__,
        {**function.__globals__, "multiprocessing": _Forkserver(context)},
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    return update_wrapper(copy, function)


def _flow_named(module: str, name: str) -> Any:
    """The flow NAME of MODULE (imported already in a run forked from the warm server)."""
    return getattr(importlib.import_module(module), name)


class FlowByName:
    """A module-level flow that pickles as its module and name; the run takes the flow from there.

    By value (what cloudpickle does with a Flow object: its function is not the module's
    attribute of that name, the Flow is), the run would get a copy of the flow's function
    whose globals hold only the names its code uses. Annotations are strings under `from
    __future__ import annotations`, so Prefect's parameter model could not resolve
    `datetime` and the run failed ("`TickModel` is not fully defined").
    """

    def __init__(self, flow: Any) -> None:
        self.module, self.name = flow.fn.__module__, flow.fn.__name__
        if _flow_named(self.module, self.name) is not flow:
            raise RuntimeError(f"{self.module}.{self.name}: kein Flow auf Modulebene")

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return _flow_named, (self.module, self.name)


def context_without_settings() -> dict[str, Any]:
    """The runner's serialized context (what Prefect sends the run) less its settings.

    Prefect's run wrapper builds the run's settings (`Settings()`) from the environment it
    hands the run: the runner's environment with the runner's settings written into it, and
    the per-run variables (heartbeat, deployment, control channel). Hydrating the context then
    validated the runner's settings once more from their dump (35–50 ms of a run's start at
    load 0.5), values the wrapper had just read from that environment. Without them in the
    context, the wrapper's settings are the run's (tests/test_warm_start.py checks the values).
    """
    from prefect.context import serialize_context

    return {**serialize_context(), "settings_context": {}}


def warm_start(
    function: Callable[..., Any], context: multiprocessing.context.BaseContext
) -> Callable[..., Any]:
    """The runner's start: Prefect's FUNCTION forking from CONTEXT, the flow sent by name."""
    variant = warm_variant(function, context)

    def start(flow: Any, *args: Any, **kwargs: Any) -> Any:
        # The flow is only pickled into the payload there (pinned by tests/test_warm_start.py).
        kwargs.setdefault("context", context_without_settings())
        return variant(FlowByName(flow), *args, **kwargs)

    return update_wrapper(start, function)


def install(flow_modules: Iterable[str]) -> None:
    """Start served runs by forking a server that has imported FLOW_MODULES.

    Call in the serving process before the runner starts. The server starts here and imports
    while the serving process registers its deployments; `wait_until_warm` before serving
    makes the first run warm too.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, *ENGINE_MODULES, *flow_modules])
    multiprocessing.forkserver.ensure_running()  # it imports while this process goes on

    from prefect import flow_engine
    from prefect.runner import _starter_direct

    prefect_function = flow_engine.run_flow_in_subprocess
    if _starter_direct.run_flow_in_subprocess is not prefect_function:
        raise RuntimeError(
            "Prefects Runner startet Läufe anders als erwartet: warm_start.py prüfen"
        )
    _starter_direct.run_flow_in_subprocess = warm_start(prefect_function, context)


def _nothing() -> None:
    """The target of `wait_until_warm`'s child."""


def wait_until_warm() -> None:
    """Return once the warm server has imported its modules (it forks only after that)."""
    child = multiprocessing.get_context("forkserver").Process(target=_nothing, daemon=True)
    child.start()
    child.join()
