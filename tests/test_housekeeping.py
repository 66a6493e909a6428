"""Housekeeping: persisted Prefect results are pruned by age, nothing else is touched."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deployments.catalog import spec_named
from efa_rollout.prefect_api import prune_results

NOW = datetime(2026, 12, 1, 3, 30, tzinfo=UTC)


def _file(path: Path, age: timedelta) -> Path:
    path.write_text("result")
    stamp = (NOW - age).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_only_old_result_files_are_deleted(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    old = _file(storage / "old", timedelta(days=15))
    fresh = _file(storage / "fresh", timedelta(days=13))
    nested = storage / "folder"
    nested.mkdir()
    inner = _file(nested / "inner", timedelta(days=400))
    outside = _file(tmp_path / "outside", timedelta(days=400))
    (storage / "link").symlink_to(outside)

    removed = prune_results(storage, older_than=NOW - timedelta(days=14))

    assert removed == 1
    assert not old.exists()
    assert fresh.exists() and inner.exists() and outside.exists()
    assert (storage / "link").is_symlink()


def test_a_missing_storage_folder_is_nothing_to_do(tmp_path: Path) -> None:
    assert prune_results(tmp_path / "nothing", older_than=NOW) == 0


@pytest.mark.prefect
def test_the_flow_prunes_prefects_local_storage(
    prefect_api: None, efa_env: Path, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    from flows.housekeeping import housekeeping

    storage = tmp_path / "results"
    storage.mkdir()
    _file(storage / "a", timedelta(days=30))
    _file(storage / "b", timedelta(days=1))
    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: storage}):
        figures = housekeeping(as_of=NOW)
    assert figures == {"removed": 1, "keep_days": 14}
    assert sorted(p.name for p in storage.iterdir()) == ["b"]


def test_housekeeping_runs_daily() -> None:
    spec = spec_named("aufraeumen")
    assert spec.crons == ("30 3 * * *",)
    assert spec.load_flow().name == "aufraeumen"
