"""Shared fixtures: a fresh, migrated SQLite database and settings per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def efa_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings pointing at a fresh data folder (SQLite file, mail folder) under tmp_path."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("EFA_DATA_DIR", str(data_dir))
    monkeypatch.delenv("EFA_DATABASE_URL", raising=False)
    monkeypatch.delenv("EFA_SMTP_URL", raising=False)
    monkeypatch.delenv("EFA_MAIL_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    dbmod.reset_engines()
    yield data_dir
    get_settings.cache_clear()
    dbmod.reset_engines()


@pytest.fixture
def engine(efa_env: Path) -> Engine:
    """The migrated engine of the test's database."""
    return dbmod.get_engine()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the test's database."""
    with Session(engine, expire_on_commit=False) as session:
        yield session
