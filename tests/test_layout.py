"""The generic top-level packages resolve to this repository, and the schema matches the models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

import models

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["flows", "tasks", "models", "deployments", "efa_rollout"])
def test_package_resolves_to_this_repository(name: str) -> None:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve().is_relative_to(REPO_ROOT), spec.origin


def test_migrations_match_models(engine: Engine) -> None:
    models.load_all()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"models changed without a migration: {diff}"


def test_the_lazy_models_package_names_every_table() -> None:
    # `models` imports a table module on first use of one of its names: a module or a table
    # left out of its lists would be missing from the migrations or from `from models import`.
    files = {
        p.stem for p in Path(models.__file__).parent.glob("*.py") if not p.stem.startswith("_")
    }
    assert set(models.MODULES) == files - {"__init__"}
    models.load_all()
    tables = {m.class_.__name__ for m in SQLModel._sa_registry.mappers}
    assert tables <= set(models.__all__)
    assert all(getattr(models, name) is not None for name in models.__all__)


def test_every_command_upgrades_an_empty_database(efa_env: Path) -> None:
    from typer.testing import CliRunner

    from efa_rollout.cli import app
    from tests.conftest import database_backend

    if database_backend() != "sqlite":
        pytest.skip("an empty database is a SQLite file here; PostgreSQL tests start migrated")
    (efa_env / "efa.db").unlink()  # tests start from a migrated copy; this one needs none

    result = CliRunner().invoke(app, ["db", "status"])
    assert result.exit_code == 0, result.output
    assert "leer" in result.output
    result = CliRunner().invoke(app, ["db", "upgrade"])
    from efa_rollout.db import head_revision

    assert result.exit_code == 0 and f"→ {head_revision()}" in result.output
    assert (efa_env / "efa.db").exists()


def test_event_kinds_match_the_reminder_policy() -> None:
    from efa_rollout.domain.audit import EventKind
    from efa_rollout.domain.reminders import DROPPED_EVENT

    assert EventKind.REMINDER_DROPPED == DROPPED_EVENT


def test_head_read_from_the_files_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from efa_rollout import db

    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    assert db._head_from_files() == ScriptDirectory.from_config(config).get_current_head()


def test_the_partial_index_keeps_its_condition_on_both_dialects() -> None:
    # Its dialect options are checked on first use (LazyDialectIndex), not when it is built.
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateIndex

    from models import OutboxMessage, table_of

    index = next(i for i in table_of(OutboxMessage).indexes if i.name == "ix_outbox_due")
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        ddl = str(CreateIndex(index).compile(dialect=dialect))
        assert ddl.endswith("WHERE status IN ('queued', 'retrying')"), ddl
