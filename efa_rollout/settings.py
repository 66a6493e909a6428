"""Configuration: one pydantic-settings class, read from the environment (EFA_*) and `.env`."""

from __future__ import annotations

import functools
import getpass
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unbekannt"


class Settings(BaseSettings):
    """Effective configuration of efa-rollout."""

    model_config = SettingsConfigDict(
        env_prefix="EFA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(Path("data"), description="Folder for the SQLite file, mail and reports")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file in the data folder"
    )
    smtp_url: SecretStr | None = Field(
        None,
        description="smtp://user:pass@host:587?starttls=1 or smtps://...; unset: mail to folder",
    )
    mail_dir: Path | None = Field(None, description="Where .eml files go when no SMTP is set")
    mail_from: str = Field("egov-koordination@ostalbkreis.example", description="Sender address")
    message_id_domain: str | None = Field(
        None, description="Domain of Message-IDs; default: sender's"
    )
    smtp_pool_size: int = Field(4, ge=1, le=32, description="Concurrent SMTP connections")
    smtp_rate_per_second: float = Field(50.0, gt=0, description="Rate limit per relay")
    smtp_timeout_seconds: float = Field(30.0, gt=0)
    retry_max_age_hours: float = Field(48.0, gt=0, description="Give up retrying 4xx after this")
    prefect_results_keep_days: int = Field(
        14, ge=1, description="Delete persisted Prefect run results after this many days"
    )
    portal_base_url: str = Field("http://127.0.0.1:8080", description="Base URL of the portal")
    portal_trusted_proxies: str = Field(
        "127.0.0.1",
        description="Reverse proxies (IPs or networks, comma-separated) whose X-Forwarded-For "
        "names the client; the bad-link brake counts per client address",
    )
    portal_token_days: int = Field(180, ge=1, description="Validity of personal portal links")
    timezone: str = Field("Europe/Berlin", description="Time zone for dates, windows, schedules")
    sending_window_start: time = Field(time(8, 0))
    sending_window_end: time = Field(time(16, 0))
    closing_days: list[str] = Field(
        default_factory=lambda: ["12-24", "12-31"], description="MM-DD days town halls close"
    )
    holiday_subdivision: str = Field("BW", description="German state for public holidays")
    campaign_dirs: list[Path] = Field(
        default_factory=lambda: [Path("campaigns")],
        description="Extra folders with the coordinator's own campaign definitions",
    )
    bounce_imap_url: SecretStr | None = Field(
        None,
        description="imaps://user:pass@host:993/INBOX or imap://...:143/INBOX (STARTTLS); unset: off",
    )
    bounce_processed_folder: str = Field(
        "efa-verarbeitet", description="IMAP folder processed reports are moved to"
    )
    bounce_transient_threshold: int = Field(
        3, ge=1, description="Transient bounces within the window before a contact is flagged"
    )
    bounce_transient_window_days: int = Field(14, ge=1, description="Window for that count")
    bounce_verp: bool = Field(
        False, description="Envelope sender per message (local+bID@domain), if the relay allows"
    )
    actor: str = Field(default_factory=_default_actor, description="Author name for the event log")

    coordinator_name: str = "Erika Mustermann"
    coordinator_function: str = "E-Government-Koordinatorin"
    coordinator_office: str = "Landratsamt Ostalbkreis"
    coordinator_department: str = "Stabsstelle Digitalisierung"
    coordinator_address: str = "Stuttgarter Straße 41, 73430 Aalen"
    coordinator_phone: str = "07361 503-0"
    coordinator_email: str = "egov-koordination@ostalbkreis.example"
    reply_to: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError):
            raise ValueError(f"unbekannte Zeitzone »{value}« (z. B. Europe/Berlin)") from None
        return value

    @computed_field  # type: ignore[prop-decorator]  # mypy rejects decorators over @property (pydantic docs)
    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'efa.db').resolve()}"

    @computed_field  # type: ignore[prop-decorator]  # mypy rejects decorators over @property (pydantic docs)
    @property
    def effective_mail_dir(self) -> Path:
        return (self.mail_dir or self.data_dir / "mail").resolve()

    @computed_field  # type: ignore[prop-decorator]  # mypy rejects decorators over @property (pydantic docs)
    @property
    def effective_reply_to(self) -> str:
        return self.reply_to or self.coordinator_email

    @computed_field  # type: ignore[prop-decorator]  # mypy rejects decorators over @property (pydantic docs)
    @property
    def effective_message_id_domain(self) -> str:
        return self.message_id_domain or self.mail_from.rsplit("@", 1)[-1]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def smtp_enabled(self) -> bool:
        return self.smtp_url is not None and bool(self.smtp_url.get_secret_value())

    def masked(self) -> dict[str, Any]:
        """The effective settings as a dict, with passwords masked."""
        data = self.model_dump(mode="json")
        data["smtp_url"] = mask_url(self.smtp_url.get_secret_value()) if self.smtp_url else None
        data["bounce_imap_url"] = (
            mask_url(self.bounce_imap_url.get_secret_value()) if self.bounce_imap_url else None
        )
        data["database_url"] = mask_url(self.effective_database_url)
        data["effective_database_url"] = mask_url(self.effective_database_url)
        return data


def mask_url(url: str) -> str:
    """Replace the password in a URL by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`)."""
    return Settings()
