"""The installed environment is exactly requirements.lock, so a fresh machine gets what was tested."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lock_check():
    spec = importlib.util.spec_from_file_location("lock_check", ROOT / "scripts" / "lock_check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_installed_set_is_the_lock() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lock_check.py")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_lock_pins_the_packages_that_broke_the_scheduler() -> None:
    pins = _lock_check().locked((ROOT / "requirements.lock").read_text(encoding="utf-8"))
    assert pins["prefect"] == "3.9.1"
    assert pins["sqlalchemy"].startswith("2.")
    assert int(pins["fastapi"].split(".")[1]) < 151


def test_drift_is_named() -> None:
    check = _lock_check()
    pins = check.locked(
        "sqlalchemy==2.0.58 \\\n    --hash=sha256:00\npywin32==312 ; sys_platform == 'win32' \\\n"
    )
    assert "pywin32" not in pins
    wrong, extra = check.drift(pins, {"sqlalchemy": "2.1.9", "leftover": "1.0", "pip": "24"})
    assert wrong == ["sqlalchemy: gesperrt 2.0.58, installiert 2.1.9"]
    assert extra == ["leftover"]
