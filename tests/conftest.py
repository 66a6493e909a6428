"""Shared fixtures: a fresh, migrated database and settings per test.

SQLite by default. With EFA_TEST_DATABASE_URL=postgresql://... every test gets its own
PostgreSQL database, copied from a template that was migrated once per session.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from efa_rollout import db as dbmod
from efa_rollout.settings import get_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE = REPO_ROOT / "reference"
GV100AD = Path(os.environ.get("EFA_GV100AD", REFERENCE / "GV100AD_301123.txt"))
BUILDING_AUTHORITIES = REFERENCE / "ostalbkreis-baurechtsbehoerden.csv"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
POSTGRES_URL = os.environ.get("EFA_TEST_DATABASE_URL", "")
TEMPLATE_DB = f"efa_test_template_{os.getpid()}"  # parallel runs must not collide


def _pg_url(database: str) -> str:
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + database


def _pg_admin(*statements: str) -> None:
    from sqlalchemy import create_engine

    admin = create_engine(
        dbmod.make_engine(POSTGRES_URL).url, isolation_level="AUTOCOMMIT", poolclass=None
    )
    with admin.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """A migrated template database (PostgreSQL runs only)."""
    if not POSTGRES_URL:
        yield None
        return
    _pg_admin(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}", f"CREATE DATABASE {TEMPLATE_DB}")
    engine = dbmod.make_engine(_pg_url(TEMPLATE_DB))
    dbmod.upgrade(engine)
    engine.dispose()
    yield TEMPLATE_DB
    _pg_admin(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """A SQLite file migrated once per session; each test starts from a copy (SQLite runs only)."""
    if POSTGRES_URL:
        return None
    path = tmp_path_factory.mktemp("template") / "efa.db"
    engine = dbmod.make_engine(f"sqlite:///{path}")
    dbmod.upgrade(engine)
    # Closing the last connection folds the WAL into the file, so a plain copy is complete.
    engine.dispose()
    assert not path.with_name("efa.db-wal").exists()
    return path


def database_backend() -> str:
    """'postgresql' or 'sqlite': what this test run uses."""
    return "postgresql" if POSTGRES_URL else "sqlite"


@pytest.fixture
def efa_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_template: str | None,
    sqlite_template: Path | None,
) -> Iterator[Path]:
    """Settings pointing at a fresh data folder (mail, reports) and a fresh database."""
    data_dir = tmp_path / "data"
    if sqlite_template:
        # A copy of the migrated template instead of a full Alembic upgrade per test.
        data_dir.mkdir(parents=True)
        shutil.copyfile(sqlite_template, data_dir / "efa.db")
    monkeypatch.setenv("EFA_DATA_DIR", str(data_dir))
    monkeypatch.delenv("EFA_DATABASE_URL", raising=False)
    database = None
    if postgres_template:
        database = f"efa_t_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**9}"
        _pg_admin(f"CREATE DATABASE {database} TEMPLATE {postgres_template}")
        monkeypatch.setenv("EFA_DATABASE_URL", _pg_url(database))
    monkeypatch.delenv("EFA_SMTP_URL", raising=False)
    monkeypatch.delenv("EFA_BOUNCE_IMAP_URL", raising=False)
    monkeypatch.delenv("EFA_MAIL_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    dbmod.reset_engines()
    yield data_dir
    get_settings.cache_clear()
    dbmod.reset_engines()
    if database:
        _pg_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@pytest.fixture
def engine(efa_env: Path) -> Engine:
    """The migrated engine of the test's database."""
    return dbmod.get_engine()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the test's database."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


def _prefect_database_template() -> Path:
    """A Prefect server database migrated to head, cached per Prefect version (built once)."""
    import prefect

    migrations = Path(prefect.__file__).parent / "server" / "database" / "_migrations"
    names = sorted(p.name for p in (migrations / "versions" / "sqlite").glob("*.py"))
    key = hashlib.sha256("\n".join([prefect.__version__, *names]).encode()).hexdigest()[:12]
    default = Path.home() / ".cache" / "efa-rollout" / "prefect-db"
    template = Path(os.environ.get("EFA_PREFECT_DB_CACHE", default)) / f"{key}.db"
    if template.exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        # In a child process: the server's migration code is not loaded into the test process.
        built = Path(work) / "prefect.db"
        script = (
            "import asyncio; from prefect.server.database import provide_database_interface; "
            "asyncio.run(provide_database_interface().create_db())"
        )
        env = {
            **os.environ,
            "PREFECT_HOME": work,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{built}",
        }
        subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
        partial = template.with_suffix(f".{os.getpid()}.tmp")
        with sqlite3.connect(built) as source, sqlite3.connect(partial) as target:
            source.backup(target)  # a complete copy whatever the journal mode
        partial.replace(template)  # atomic: a parallel session sees all of it or nothing
    return template


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One Prefect test server for the whole session (starting one takes 10-60 s)."""
    from unittest import mock

    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    # The harness migrates a new server database from scratch (116 migrations, ~5 s CPU) in a
    # fresh mkdtemp(); handing it a folder with a migrated copy leaves only the server's own
    # check that the database is at head. The harness removes the folder at exit.
    folder = tempfile.mkdtemp(prefix="efa-prefect-")
    shutil.copyfile(_prefect_database_template(), Path(folder) / "prefect-test.db")
    with ExitStack() as stack:
        with mock.patch("prefect.testing.utilities.mkdtemp", return_value=folder):
            stack.enter_context(prefect_test_harness(server_startup_timeout=180))
        # Heartbeats would make every synchronous flow wait up to 1 s at its end (PREFECT.md).
        stack.enter_context(temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
        yield


@pytest.fixture
def prefect_harness(prefect_api: None) -> None:
    """Alias of prefect_api."""


@pytest.fixture
def smtp_server(efa_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real SMTP server on loopback (aiosmtpd, faults on demand), settings pointing at it.

    A timeout a loaded machine does not reach (a test of the timeout sets its own), a rate no
    test reaches.
    """
    from tests.smtp_fault_server import FaultServer

    server = FaultServer().start()
    monkeypatch.setenv("EFA_SMTP_URL", server.url)
    monkeypatch.setenv("EFA_SMTP_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("EFA_SMTP_RATE_PER_SECOND", "100000")
    get_settings.cache_clear()
    yield server
    server.stop()
    get_settings.cache_clear()
