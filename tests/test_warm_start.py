"""Served runs forked from the warm server (deployments/warm_start.py).

The replacement is Prefect's own `run_flow_in_subprocess` with one name rebound; the first tests
pin what that relies on in the pinned Prefect, so that an upgrade fails here, loudly, instead
of starting runs some other way. Then: what a forked run inherits (nothing that must not be
shared), and served runs against a real Prefect server: the right result from a warm process,
cancellation by the runner, a crash seen as a crash.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.catalog import CATALOG
from efa_rollout.prefect_rest import FINAL_STATES, ServerApi, stored_result
from tests.conftest import REPO_ROOT

#: SHA-256 of the source of what warm_start.py relies on, in Prefect 3.8.8. When Prefect
#: changes one of them, read the new code: does it still create its process with exactly one
#: `multiprocessing.get_context("spawn")`, and does the runner still call the module-level name
#: in `_starter_direct`? Then put the new digest here.
PINNED_SOURCES = {
    "run_flow_in_subprocess": "38820abf84e9cd5d904d6c9e86b19c8a48ad179a51b2310230b48162f98979cd",
    "DirectSubprocessStarter.start": "8a6eab9d006abdd7c5f68e80b64173bd548b39a0de35996cc4e400ff24d2cc86",
    # It must skip an empty settings context (warm_start.context_without_settings).
    "hydrated_context": "245157195e9467aea8dfe889bc2d59d06e3cb7c04b25e0ae840fab07018d52fb",
}


def _pinned_objects() -> dict[str, Any]:
    from prefect.context import hydrated_context
    from prefect.flow_engine import run_flow_in_subprocess
    from prefect.runner._starter_direct import DirectSubprocessStarter

    return {
        "run_flow_in_subprocess": run_flow_in_subprocess,
        "DirectSubprocessStarter.start": DirectSubprocessStarter.start,
        "hydrated_context": hydrated_context,
    }


def test_prefects_code_is_the_code_warm_start_was_written_against() -> None:
    found = {
        name: hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()
        for name, obj in _pinned_objects().items()
    }
    assert found == PINNED_SOURCES, "Prefect changed: deployments/warm_start.py prüfen"


def test_the_replacement_rebinds_only_multiprocessing_and_spawns_nothing_else() -> None:
    import multiprocessing

    from prefect import flow_engine
    from prefect.runner import _starter_direct

    from deployments import warm_start

    original = flow_engine.run_flow_in_subprocess
    assert _starter_direct.run_flow_in_subprocess is original  # the name the runner calls
    # `multiprocessing` is used once, for the context; nothing in it calls other functions of it.
    code = original.__code__
    assert code.co_names.count("multiprocessing") == 1 and "get_context" in code.co_names
    assert inspect.getsource(original).count('multiprocessing.get_context("spawn")') == 1
    context = multiprocessing.get_context("forkserver")
    variant = warm_start.warm_variant(original, context)
    assert inspect.signature(variant) == inspect.signature(original)
    assert variant.__code__ is code
    changed = {
        name
        for name, value in variant.__globals__.items()
        if original.__globals__.get(name) is not value
    }
    assert changed == {"multiprocessing"}
    assert variant.__globals__["multiprocessing"].get_context("spawn") is context
    with pytest.raises(RuntimeError):
        variant.__globals__["multiprocessing"].get_context("fork")


def test_prefect_only_pickles_the_flow_so_a_stand_in_by_name_will_do() -> None:
    from prefect.flow_engine import run_flow_in_subprocess

    tree = ast.parse(textwrap.dedent(inspect.getsource(run_flow_in_subprocess)))
    uses = []
    for call in ast.walk(tree):
        for keyword in getattr(call, "keywords", []):
            if isinstance(keyword.value, ast.Name) and keyword.value.id == "flow":
                uses.append((getattr(call.func, "id", None), keyword.arg))
    loads = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "flow"]
    assert uses == [("cloudpickle_wrapped_call", "flow")] and len(loads) == 1


def test_the_runs_context_leaves_the_settings_the_run_built_itself() -> None:
    from prefect.context import (
        SettingsContext,
        get_settings_context,
        hydrated_context,
        serialize_context,
    )
    from prefect.settings import Settings

    from deployments import warm_start

    sent = warm_start.context_without_settings()
    assert sent["settings_context"] == {}
    assert {k: v for k, v in sent.items() if k != "settings_context"} == {
        k: v for k, v in serialize_context().items() if k != "settings_context"
    }
    # What Prefect's run wrapper enters before the run: settings read from the run's environment.
    own = SettingsContext(profile=get_settings_context().profile, settings=Settings())
    with own, hydrated_context(sent):
        assert get_settings_context() is own  # not replaced by the runner's, validated again
    with own, hydrated_context(serialize_context()):
        assert get_settings_context() is not own  # what Prefect's own context would have done


def test_a_flow_by_name_unpickles_as_the_modules_flow() -> None:
    import pickle

    import cloudpickle
    from prefect import flow

    from deployments import warm_start
    from flows.tick import tick

    payload = cloudpickle.dumps(warm_start.FlowByName(tick))
    assert pickle.loads(payload) is tick
    assert len(payload) < 200  # a name, not the function (cloudpickle sends ~2 KB by value)
    # By value, the copy lacks the module's globals the string annotations name (the bug).
    assert "datetime" not in pickle.loads(cloudpickle.dumps(tick)).fn.__globals__

    @flow(name="nicht-auf-modulebene")
    def local() -> None:
        pass

    with pytest.raises((RuntimeError, AttributeError)):
        warm_start.FlowByName(local)


def _python(script: str, env: dict[str, str], timeout: float = 180) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EFA_"))}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        EFA_DATA_DIR=str(tmp_path / "data"),
        **extra,
    )
    return env


def test_a_forked_run_inherits_the_imports_and_nothing_that_must_not_be_shared(
    tmp_path: Path,
) -> None:
    """A child of the warm server, as the catalogue's serving starts it."""
    facts = tmp_path / "facts.json"
    script = f"""
import multiprocessing, os
from deployments import warm_start
from deployments.catalog import CATALOG
warm_start.install(spec.module for spec in CATALOG)
warm_start.wait_until_warm()
os.environ["EFA_WARM_MARKER"] = "nach dem Start des Servers gesetzt"
from tests import warm_support
child = multiprocessing.get_context("forkserver").Process(
    target=warm_support.write_facts, args=({str(facts)!r},)
)
child.start()
child.join()
print(child.exitcode)
"""
    assert _python(script, _child_env(tmp_path)).strip() == "0"
    found = json.loads(facts.read_text(encoding="utf-8"))
    assert found["forked_warm"] is True  # imported by its parent, the warm server
    assert found["loaded"] == ["prefect.flow_engine", "flows.tick"]  # before the fork
    assert found["threads"] == ["MainThread"]
    assert found["event_loop"] is False
    assert found["sqlalchemy_engines"] == found["efa_engines"] == 0
    assert found["settings_cached"] == 0
    assert found["httpx_clients"] == 0
    # The warm server's environment is the one at its start; a run gets the runner's current
    # environment from Prefect's payload instead (see the served test below).
    assert found["environ_marker"] is None
    assert {spec.module for spec in CATALOG} >= {"flows.tick"}


# -- served runs against a real Prefect server --------------------------------------------------

SERVE = """
from deployments import serving, warm_start
from tests import warm_support
serving.prepare_environment()
warm_start.install(["tests.warm_support"])
import os
os.environ["PREFECT_TASKS_DEFAULT_RETRIES"] = "3"  # after the runner's settings were built
flows = (warm_support.warm_probe, warm_support.warm_sleeper, warm_support.warm_crash)
serving.serve_warm([(f, {"name": "warm"}) for f in flows], limit=3)
"""


@pytest.fixture
def served(prefect_api: None, tmp_path: Path) -> Iterator[ServerApi]:
    """The probe flows served by `serve_warm` in a child process, on the test server."""
    from prefect.settings import PREFECT_API_URL

    api_url = str(PREFECT_API_URL.value()).rstrip("/")
    env = _child_env(
        tmp_path,
        PREFECT_API_URL=api_url,
        EFA_WARM_MARKER="aus dem Runner",
        PREFECT_RUNNER_HEARTBEAT_FREQUENCY="45",
    )
    log = tmp_path / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE],
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        with ServerApi(api_url) as api:
            deadline = time.monotonic() + 180
            names = ("warm-probe/warm", "warm-sleeper/warm", "warm-crash/warm")
            while not all(_deployment(api, n) for n in names):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
            yield api
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def _deployment(api: ServerApi, name: str) -> str | None:
    response = httpx.get(f"{api.api_url}/deployments/name/{name}", timeout=10)
    if response.status_code != 200 or response.json().get("status") != "READY":
        return None
    return str(response.json()["id"])


def _run(api: ServerApi, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    deployment_id = _deployment(api, name)
    assert deployment_id
    return api.create_flow_run(deployment_id, parameters, ["efa-test"])


def _final(api: ServerApi, flow_run_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        flow_run = api.flow_run(flow_run_id)
        if flow_run["state"]["type"] in FINAL_STATES:
            return flow_run
        time.sleep(0.2)
    raise AssertionError(f"Lauf {flow_run_id} nicht beendet nach {timeout:.0f} s")


@pytest.mark.slow
def test_served_runs_start_warm_end_right_and_can_be_cancelled_or_crash(
    served: ServerApi, tmp_path: Path
) -> None:
    api = served
    # Two runs: each its own fork of the warm server, each with the right result.
    runs = [
        _run(api, "warm-probe/warm", {"number": 21, "day": "2026-12-31"}),
        _run(api, "warm-probe/warm", {"number": 50}),
    ]
    results = []
    for flow_run in runs:
        final = _final(api, flow_run["id"])
        assert final["state"]["type"] == "COMPLETED", final["state"]
        results.append(stored_result(final["state"]))
    assert [r["double"] for r in results] == [42, 100]
    assert [r["day_after"] for r in results] == ["2027-01-01", None]
    for result in results:
        assert result["forked_warm"] is True and result["module_from_parent"] is True
        # The run's settings came from the runner's environment, not the warm server's.
        assert result["environ_marker"] == "aus dem Runner"
        # Prefect's settings too, built in the run: the runner's server, the runner's current
        # environment and the heartbeat the runner sets per run.
        assert result["settings"] == {
            "api_url": served.api_url,
            "default_retries": 3,
            "heartbeat": 45,
        }
        assert result["efa_engines"] == 0
    assert results[0]["pid"] != results[1]["pid"]

    # Cancelling: the runner signals the run's process; it ends CANCELLED and is gone.
    facts = tmp_path / "sleeper.json"
    sleeper = _run(api, "warm-sleeper/warm", {"seconds": 300, "facts_file": str(facts)})
    deadline = time.monotonic() + 120
    while not facts.exists():
        assert time.monotonic() < deadline, "der Lauf hat nicht begonnen"
        time.sleep(0.1)
    found = json.loads(facts.read_text(encoding="utf-8"))
    pid = found["pid"]
    assert found["forked_warm"] is True and _alive(pid)
    response = httpx.post(
        f"{api.api_url}/flow_runs/{sleeper['id']}/set_state",
        json={"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True},
        timeout=10,
    )
    response.raise_for_status()
    final = _final(api, sleeper["id"], timeout=90)
    assert final["state"]["type"] == "CANCELLED", final["state"]
    deadline = time.monotonic() + 30
    while _alive(pid):
        assert time.monotonic() < deadline, f"Prozess {pid} läuft nach dem Abbruch weiter"
        time.sleep(0.2)

    # A run whose process dies is reported as crashed (its exit code reaches the runner).
    crash = _run(api, "warm-crash/warm", {})
    final = _final(api, crash["id"])
    assert final["state"]["type"] == "CRASHED", final["state"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not reaped yet counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
