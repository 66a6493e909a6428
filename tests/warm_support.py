"""Flows and probes for tests/test_warm_start.py: what a served run sees of its own process.

Served by `deployments.serving.serve_warm` in a child process of the test, so this module is
preloaded by the warm server like a flow module of the catalogue.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
import threading
import time
from datetime import date, timedelta
from typing import Any

from prefect import flow

from deployments import warm_start

#: Set where this module was imported: the warm server's pid in a run forked from it.
IMPORTED_BY = os.getpid()


def process_facts() -> dict[str, Any]:
    """What this process holds that a fork could have carried over from its parent."""
    import httpx
    from sqlalchemy.engine import Engine

    from efa_rollout import db
    from efa_rollout.settings import get_settings

    policy_loop = getattr(getattr(asyncio.get_event_loop_policy(), "_local", None), "_loop", None)
    return {
        "pid": os.getpid(),
        "forked_warm": warm_start.forked_warm(),
        "module_from_parent": os.getppid() == IMPORTED_BY,
        "threads": [t.name for t in threading.enumerate()],
        "event_loop": policy_loop is not None,
        "sqlalchemy_engines": sum(isinstance(o, Engine) for o in gc.get_objects()),
        "efa_engines": len(db._ENGINES),
        "settings_cached": get_settings.cache_info().currsize,
        "httpx_clients": sum(
            isinstance(o, httpx.Client | httpx.AsyncClient) for o in gc.get_objects()
        ),
        "loaded": [m for m in ("prefect.flow_engine", "flows.tick") if m in sys.modules],
        "environ_marker": os.environ.get("EFA_WARM_MARKER"),
    }


def write_facts(path: str) -> None:
    """Its process facts as JSON into PATH (complete or not at all)."""
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        json.dump(process_facts(), handle)
    os.replace(f"{path}.tmp", path)


@flow(name="warm-probe")
def warm_probe(number: int, day: date | None = None) -> dict[str, Any]:
    """Doubles NUMBER, gives the day after DAY, and tells how its process was started.

    DAY's annotation is a string here (`from __future__ import annotations`): Prefect resolves
    it in this module's globals, which a flow pickled by value lacks.
    """
    after = (day + timedelta(days=1)).isoformat() if day else None
    return {"double": 2 * number, "day_after": after, **process_facts(), "settings": settings()}


def settings() -> dict[str, Any]:
    """A few of the Prefect settings this run holds."""
    from prefect.settings import get_current_settings

    current = get_current_settings()
    return {
        "api_url": str(current.api.url).rstrip("/"),
        "default_retries": current.tasks.default_retries,
        "heartbeat": current.flows.heartbeat_frequency,
    }


@flow(name="warm-sleeper")
def warm_sleeper(seconds: float, facts_file: str) -> str:
    """Writes its process facts to FACTS_FILE and sleeps (to be cancelled meanwhile)."""
    write_facts(facts_file)
    time.sleep(seconds)
    return "ausgeschlafen"


@flow(name="warm-crash")
def warm_crash() -> None:
    """Dies as a crashed process does (SIGKILL, nothing cleaned up)."""
    os.kill(os.getpid(), signal.SIGKILL)
