"""Settings: defaults, environment, .env file, and secrets masked in `efa config`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from efa_rollout.cli import app
from efa_rollout.settings import Settings, get_settings, mask_url


def test_defaults_are_embedded(efa_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EFA_DATABASE_URL", raising=False)
    settings = Settings()
    assert settings.effective_database_url == f"sqlite:///{(efa_env / 'efa.db').resolve()}"
    assert settings.effective_mail_dir == (efa_env / "mail").resolve()
    assert settings.timezone == "Europe/Berlin" and not settings.smtp_enabled
    assert settings.effective_reply_to == settings.coordinator_email
    assert settings.effective_message_id_domain == "ostalbkreis.example"


def test_dotenv_file_is_read(efa_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (efa_env.parent / ".env").write_text("EFA_COORDINATOR_NAME=Max Beispiel\n", encoding="utf-8")
    monkeypatch.delenv("EFA_COORDINATOR_NAME", raising=False)
    assert Settings().coordinator_name == "Max Beispiel"


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="Europe/Berlinn"):
        Settings(timezone="Europe/Berlinn")


def test_config_masks_passwords(efa_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFA_SMTP_URL", "smtp://relay:geheim123@mail.example:587?starttls=1")
    monkeypatch.setenv("EFA_DATABASE_URL", "postgresql://efa:pw-secret@db.example/efa")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    assert "geheim123" not in result.output and "pw-secret" not in result.output
    data = json.loads(result.output)
    assert data["smtp_url"] == "smtp://relay:***@mail.example:587?starttls=1"
    assert data["database_url"] == "postgresql://efa:***@db.example/efa"


def test_mask_url_leaves_urls_without_password() -> None:
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"
