"""Protections of the portal: CSRF tokens, a brake on bad links, redacted logs.

The personal link is the only credential, so everything here keeps it from leaking (redacted
logs) and makes guessing it pointless (rate brake); the HTTP-level protections (size limit,
headers, origin) are in ``efa_rollout.portal.middleware``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from efa_rollout.errors import UserError
from efa_rollout.private_files import private_dir

__all__ = [
    "CsrfSigner",
    "FailureBrake",
    "Penalty",
    "RedactTokens",
    "install_log_redaction",
    "load_secret",
    "parse_trusted_proxies",
    "redact",
]

_log = logging.getLogger("efa_rollout.portal")


# ---------------------------------------------------------------------------------------------
# CSRF
# ---------------------------------------------------------------------------------------------


def load_secret(data_dir: Path) -> bytes:
    """The server secret for CSRF tokens: EFA_PORTAL_SECRET, or a file kept in the data folder.

    The file (``portal-secret``, mode 0600) is created on first use so that forms stay valid
    across restarts and between several portal processes sharing one data folder.
    """
    configured = os.environ.get("EFA_PORTAL_SECRET", "")
    if configured:
        if len(configured) < 32:
            raise ValueError("EFA_PORTAL_SECRET ist zu kurz (mindestens 32 Zeichen).")
        return configured.encode()
    path = data_dir / "portal-secret"
    if not path.exists():
        private_dir(data_dir)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < 32:
        raise ValueError(f"{path} enthält kein gültiges Geheimnis.")
    return secret.encode()


class CsrfSigner:
    """CSRF tokens bound to one portal link: HMAC(secret, hash of the link's token).

    A rotated link has another hash, so forms of the old link stop working with it.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def token_for(self, token_hash: str) -> str:
        """The CSRF token for forms of the link whose stored hash is TOKEN_HASH."""
        return hmac.new(self._secret, b"csrf\x00" + token_hash.encode(), hashlib.sha256).hexdigest()

    def verify(self, token_hash: str, presented: str | None) -> bool:
        """True when PRESENTED is the CSRF token of TOKEN_HASH (constant-time comparison)."""
        if not presented or len(presented) > 128:
            return False
        return hmac.compare_digest(self.token_for(token_hash), presented)


# ---------------------------------------------------------------------------------------------
# Brake on repeated bad links
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Penalty:
    """What one bad link earned: a delay of its answer, and 429 once over a limit."""

    delay: float
    retry_after: int | None = None

    @property
    def blocked(self) -> bool:
        """True when the answer is 429 (too many bad links from the address or overall)."""
        return self.retry_after is not None


class FailureBrake:
    """Slows down bad links, per address and overall; a valid link is never held back.

    Only failures are counted, each under a lock at the moment it is found, so a burst of
    concurrent bad links is counted one by one and cannot slip past the limit. Each bad link
    within WINDOW seconds doubles the delay of its answer (BASE_DELAY up to MAX_DELAY); beyond
    MAX_FAILURES from one address, or GLOBAL_FAILURES from all addresses together, a bad link
    is answered 429 after MAX_DELAY. Town halls behind one NAT or proxy therefore never lock
    each other out: the link of a municipality opens whatever others guessed.
    """

    def __init__(
        self,
        *,
        max_failures: int = 20,
        window: float = 60.0,
        base_delay: float = 0.2,
        max_delay: float = 2.0,
        global_failures: int = 600,
        max_addresses: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.global_failures = global_failures
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    def _expire(self, stamps: deque[float], now: float) -> None:
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()

    def failures(self, address: str, *, now: float | None = None) -> int:
        """How many bad links ADDRESS presented within the window."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stamps = self._failures.get(address)
            if stamps is None:
                return 0
            self._expire(stamps, now)
            return len(stamps)

    def record_failure(self, address: str, *, now: float | None = None) -> Penalty:
        """Count a bad link from ADDRESS (atomically) and return what its answer earns."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stamps = self._failures.get(address)
            if stamps is None:
                stamps = self._failures[address] = deque()
            self._failures.move_to_end(address)
            self._expire(stamps, now)
            self._expire(self._all, now)
            stamps.append(now)
            self._all.append(now)
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)
            own, overall = len(stamps), len(self._all)
            first = stamps[0] if own > self.max_failures else self._all[0]
        delay = min(self.max_delay, self.base_delay * 2 ** (own - 1))
        if overall > self.global_failures // 2:  # many addresses guessing: slow every failure
            delay = max(delay, self.max_delay * min(1.0, overall / self.global_failures))
        if own > self.max_failures or overall > self.global_failures:
            retry = max(1, int(first + self.window - now + 0.999))
            return Penalty(max(delay, self.max_delay), retry)
        return Penalty(delay)

    async def penalise(self, address: str) -> Penalty:
        """Record a bad link of ADDRESS and wait the delay it earned; returns the penalty."""
        penalty = self.record_failure(address)
        _log.warning(
            "Ungültiger Portal-Link von %s (Verzögerung %.1f s%s).",
            address,
            penalty.delay,
            ", gesperrt" if penalty.blocked else "",
        )
        if penalty.delay > 0:
            await asyncio.sleep(penalty.delay)
        return penalty


def parse_trusted_proxies(value: str | None) -> list[str]:
    """The addresses or networks of EFA_PORTAL_TRUSTED_PROXIES, checked (comma-separated)."""
    entries = [part.strip() for part in (value or "").split(",") if part.strip()]
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise UserError(
                f"EFA_PORTAL_TRUSTED_PROXIES: »{entry}« ist keine IP-Adresse und kein Netz "
                "(z. B. 127.0.0.1 oder 10.0.0.0/8)."
            ) from None
    return entries


# ---------------------------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------------------------

_TOKEN_IN_PATH = re.compile(r"(/p/)[^/\s?#\"']+")


def redact(text: str) -> str:
    """TEXT with every portal token in a /p/<token> path replaced by ***."""
    return _TOKEN_IN_PATH.sub(r"\1***", text)


class RedactTokens(logging.Filter):
    """A log filter that removes portal tokens from messages and their arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return True


def _redact_arg(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


_FILTER = RedactTokens()


def install_log_redaction() -> None:
    """Attach the redaction filter to uvicorn's and the portal's loggers and their handlers.

    Call after uvicorn configured its logging (creating ``uvicorn.Config`` does that).
    """
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error", "efa_rollout.portal"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
