"""The campaign and enrolment commands through the CLI runner, as the coordinator uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from efa_rollout.cli import app
from tests.conftest import BUILDING_AUTHORITIES, GV100AD, database_backend

runner = CliRunner()


def efa(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def test_create_start_tick_status_and_overrides(efa_env: Path) -> None:
    efa("municipalities", "import", str(GV100AD), "--district", "08136")
    efa("municipalities", "import", str(BUILDING_AUTHORITIES))
    out = efa(
        "campaign",
        "create",
        "viba-bw",
        "--district",
        "08136",
        "--go-live",
        "2024-08-01",
        "--pilot",
        "08136021",
        "--date",
        "silent_go_live=2023-11-16",
        "--allow-past",  # a rollout that already happened, replayed with --as-of
    )
    assert "viba-bw-ostalbkreis" in out and "34 Gemeinden" in out
    shown = json.loads(efa("campaign", "show", "viba-bw-ostalbkreis", "--json"))
    assert shown["dates"]["silent_go_live"] == "2023-11-16"
    assert shown["pilots"] == ["08136021"] and shown["targeted"] == 34

    out = efa("campaign", "start", "viba-bw-ostalbkreis", "--no-prefect", "--as-of", "2023-04-17")
    assert "34 Gemeinden" in out
    assert "keine zustellbare Ansprechperson" in out  # no contacts imported: said, not hidden

    out = efa(
        "enrolment", "pause", "viba-bw-ostalbkreis", "08136021", "--reason", "Personalwechsel"
    )
    assert "pausiert" in out
    out = efa("campaign", "tick", "viba-bw-ostalbkreis", "--no-prefect", "--as-of", "2023-06-09")
    assert "33 Stufenwechsel" in out

    status = json.loads(
        efa("campaign", "status", "viba-bw-ostalbkreis", "--json", "--as-of", "2023-06-09")
    )
    assert status["stages"]["summary_distribution"]["count"] == 33
    # The pause was logged at the real "now": on 09.06.2023 Essingen was still active.
    assert status["paused"]["count"] == 0
    status = json.loads(efa("campaign", "status", "viba-bw-ostalbkreis", "--json"))
    assert status["paused"]["count"] == 1
    assert status["paused"]["municipalities"][0]["name"] == "Essingen"
    assert "Zusammenfassung verteilen" in efa("campaign", "status", "viba-bw-ostalbkreis")

    out = efa(
        "enrolment",
        "set-stage",
        "viba-bw-ostalbkreis",
        "08136002",
        "checklist_follow_up",
        "--reason",
        "telefonisch geklärt",
    )
    assert "Checklisten-Nachverfolgung" in out
    listing = json.loads(efa("campaign", "list", "--json"))
    assert listing[0]["status"] == "running" and listing[0]["enrolments"] == 33


def test_errors_are_german_and_name_the_problem(efa_env: Path) -> None:
    result = runner.invoke(
        app, ["campaign", "create", "ewa", "--district", "08136", "--go-live", "1.8.24x"]
    )
    assert result.exit_code != 0
    result = runner.invoke(app, ["campaign", "status", "gibt-es-nicht"])
    assert "Die Kampagne »gibt-es-nicht« gibt es nicht" in str(result.exception)


#: What no read-only command needs: Prefect and the flow layers, migrations, spreadsheets and
#: a plotting or array library (numpy; the report draws its charts as SVG from templates),
#: HTTP, IMAP, the portal's server.
HEAVY = (
    "prefect",
    "flows",
    "tasks",
    "deployments",
    "alembic",
    "openpyxl",
    "numpy",
    "httpx",
    "imapclient",
    "starlette",
    "uvicorn",
)
#: What commands that never read a campaign definition do not need either (pydantic's
#: definition models, YAML, Jinja).
DEFINITION = ("efa_rollout.definitions", "yaml", "jinja2", "efa_rollout.mail.render")
#: The PostgreSQL dialect (and its drivers) on a SQLite database.
SQLITE_NEEDS_NOT = ("sqlalchemy.dialects.postgresql",) if database_backend() == "sqlite" else ()


def _modules_after(commands: list[list[str]]) -> set[str]:
    """The modules a fresh interpreter holds after running COMMANDS through the CLI."""
    code = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from efa_rollout.cli import app\n"
        f"for args in {commands!r}:\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    assert r.exit_code == 0, (args, r.output)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(m == n or m.startswith(f"{n}.") for m in modules))


def test_read_only_commands_do_not_import_prefect(efa_env: Path) -> None:
    efa("municipalities", "import", str(GV100AD), "--district", "08136")
    efa("campaign", "create", "ewa", "--district", "08136", "--go-live", "2027-06-01")
    light = [
        ["--help"],
        ["config"],
        ["campaign", "list"],
        ["municipalities", "list"],
        ["history", "ewa-ostalbkreis"],
    ]
    modules = _modules_after(light)
    assert _loaded(modules, HEAVY + DEFINITION + SQLITE_NEEDS_NOT) == []
    # The tables a listing reads, not all of them (`models` imports a table module on use).
    modules = _modules_after([["campaign", "list"], ["municipalities", "list"]])
    assert _loaded(modules, ("models.outbox", "models.bounces", "models.portal")) == []
    assert "models.campaign" in modules
    reading_definitions = [
        ["campaign", "templates"],
        ["campaign", "show", "ewa-ostalbkreis"],
        ["campaign", "status", "ewa-ostalbkreis"],
        ["mail", "outbox"],
    ]
    modules = _modules_after(reading_definitions)
    assert _loaded(modules, HEAVY + SQLITE_NEEDS_NOT) == []
    assert "models.outbox" in modules  # the outbox's partial index was built without it
    assert "efa_rollout.definitions" in modules  # the check above looked at the right process
    # A stored definition snapshot is read without YAML and without compiling its templates;
    # the outbox is listed without the ledger's MIME building.
    modules = _modules_after([["campaign", "status", "ewa-ostalbkreis"], ["mail", "outbox"]])
    assert "efa_rollout.definitions" in modules
    assert (
        _loaded(modules, ("yaml", "jinja2", "efa_rollout.mail.render", "efa_rollout.mail.ledger"))
        == []
    )


def test_only_quick_commands_start_without_the_cycle_collector(efa_env: Path) -> None:
    from efa_rollout.cli import is_quick

    assert is_quick(["campaign", "list", "--json"]) and is_quick(["history", "ewa-ostalbkreis"])
    assert is_quick([]) and is_quick(["campaign", "tick", "x", "--help"])
    # Long-running or writing commands keep the collector (a start for all of Germany).
    for args in (["up"], ["serve"], ["campaign", "start", "x"], ["mail", "deliver"], ["demo"]):
        assert not is_quick(args), args
    code = (
        "import gc, os, sys\n"
        "from efa_rollout import cli\n"
        "sys.argv = ['efa', *sys.argv[1:]]\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.__stdout__.write(f\"{gc.isenabled()} {os.environ.get('PYDANTIC_DISABLE_PLUGINS')}\")\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    for args, expected in (
        (["config"], "False __all__"),
        (["campaign", "close", "x"], "True None"),
    ):
        done = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
        )
        assert done.stdout.splitlines()[-1] == expected, (args, done.stdout, done.stderr)
