"""The bounce mailbox over IMAP (imapclient): list, read without marking, move; never delete."""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from efa_rollout.errors import UserError
from efa_rollout.settings import mask_url

_TRUE = {"1", "true", "yes", "ja", "on"}


@dataclass(frozen=True)
class ImapConfig:
    """Where and how to connect, and which folder holds the reports."""

    host: str
    port: int
    use_tls: bool
    start_tls: bool
    username: str
    password: str
    folder: str
    validate_certs: bool = True
    timeout: float = 30.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_imap_url(url: str, *, timeout: float = 30.0) -> ImapConfig:
    """imaps://user:pass@host:993/INBOX (TLS), imap://...:143/INBOX (STARTTLS); ?verify=0.

    imap:// without STARTTLS (?starttls=0) is only accepted for a loopback host: the password
    would otherwise cross the network in clear text.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise UserError(
            f"IMAP-URL »{mask_url(url)}« (EFA_BOUNCE_IMAP_URL) ist ungültig: erwartet "
            "imaps://benutzer:passwort@host:993/INBOX oder imap://benutzer:passwort@host:143/INBOX."
        )
    query = {k.lower(): v[-1].lower() for k, v in parse_qs(parts.query).items()}
    use_tls = parts.scheme == "imaps"
    start_tls = not use_tls and query.get("starttls", "1") in _TRUE
    if not use_tls and not start_tls and not _is_loopback(parts.hostname):
        raise UserError(
            f"IMAP-URL »{mask_url(url)}«: ohne TLS (starttls=0) nur für 127.0.0.1/localhost "
            "zulässig. Bitte imaps:// oder STARTTLS verwenden."
        )
    return ImapConfig(
        host=parts.hostname,
        port=parts.port or (993 if use_tls else 143),
        use_tls=use_tls,
        start_tls=start_tls,
        username=unquote(parts.username),
        password=unquote(parts.password or ""),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
        validate_certs=query.get("verify", "1") in _TRUE,
        timeout=timeout,
    )


def _ssl_context(config: ImapConfig) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not config.validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class BounceMailbox:
    """One IMAP session on the report folder; a context manager."""

    def __init__(self, config: ImapConfig) -> None:
        self.config = config
        self.client: IMAPClient | None = None

    def __enter__(self) -> BounceMailbox:
        config = self.config
        try:
            client = IMAPClient(
                config.host,
                port=config.port,
                ssl=config.use_tls,
                ssl_context=_ssl_context(config) if config.use_tls else None,
                timeout=config.timeout,
            )
            if config.start_tls:
                client.starttls(_ssl_context(config))
            client.login(config.username, config.password)
            client.select_folder(config.folder)
        except (IMAPClientError, OSError, ssl.SSLError) as error:
            raise UserError(
                f"Postfach für Unzustellbarkeitsmeldungen ({config.username}@{config.host}:"
                f"{config.port}/{config.folder}) nicht erreichbar: {error}"
            ) from error
        self.client = client
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.client is None:
            return
        # A failed logout means the connection is gone; nothing was left half-done on the server.
        with contextlib.suppress(IMAPClientError, OSError):
            self.client.logout()
        self.client = None

    @property
    def _imap(self) -> IMAPClient:
        assert self.client is not None, "use BounceMailbox as a context manager"
        return self.client

    def uids(self) -> list[int]:
        """Every message in the folder, oldest first."""
        return sorted(self._imap.search("ALL"))

    def fetch(self, uids: list[int], chunk: int = 200) -> Iterator[tuple[int, bytes]]:
        """(uid, raw message) for UIDS, read with BODY.PEEK so nothing is marked as seen."""
        for start in range(0, len(uids), chunk):
            part = uids[start : start + chunk]
            data = self._imap.fetch(part, ["BODY.PEEK[]"])
            for uid in part:
                item = data.get(uid)
                if item is not None and b"BODY[]" in item:
                    yield uid, item[b"BODY[]"]

    def ensure_folder(self, folder: str) -> None:
        """Create FOLDER if it does not exist."""
        if not self._imap.folder_exists(folder):
            self._imap.create_folder(folder)
            with contextlib.suppress(IMAPClientError):  # a convenience for mail clients only
                self._imap.subscribe_folder(folder)

    def move(self, uids: list[int], folder: str) -> None:
        """Move UIDS to FOLDER (IMAP MOVE; else COPY, then flag and expunge only those UIDs)."""
        if not uids:
            return
        if self._imap.has_capability("MOVE"):
            self._imap.move(uids, folder)
            return
        self._imap.copy(uids, folder)
        if self._imap.has_capability("UIDPLUS"):
            self._imap.delete_messages(uids)
            self._imap.uid_expunge(uids)
        # Without UIDPLUS an EXPUNGE could remove other clients' deleted mail: the originals
        # stay (known as processed, so nothing is counted twice; a later run copies them again).
