"""Protections of the portal: CSRF tokens, a brake on bad links, size limit, headers, logs.

The personal link is the only credential, so everything here keeps it from leaking
(no referrer, no caching, redacted logs) and makes guessing it pointless (rate brake).
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from efa_rollout.errors import UserError
from efa_rollout.private_files import private_dir

__all__ = [
    "MAX_BODY_BYTES",
    "SECURITY_HEADERS",
    "BodyTooLarge",
    "CsrfSigner",
    "FailureBrake",
    "LimitBodyMiddleware",
    "Penalty",
    "RedactTokens",
    "SecurityHeadersMiddleware",
    "TrailingSlashMiddleware",
    "install_log_redaction",
    "is_cross_site",
    "load_secret",
    "origin_of",
    "parse_trusted_proxies",
    "redact",
]

MAX_BODY_BYTES = 64 * 1024

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self'; "
        "font-src 'self'; connect-src 'none'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

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
# ASGI middleware
# ---------------------------------------------------------------------------------------------


class BodyTooLarge(Exception):
    """The request body exceeds the limit."""


DRAIN_BYTES = 1024 * 1024


async def _drain(receive: Receive, limit: int = DRAIN_BYTES) -> None:
    """Read and discard what is left of a request body (up to LIMIT bytes).

    Answering before the body is read and then closing makes the kernel reset the connection,
    and the client (a browser, too) may lose the answer; so a refused body is read away first.
    """
    drained = 0
    while drained <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class LimitBodyMiddleware:
    """Refuses request bodies over MAX_BYTES with 413, by header and while streaming."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES, reject: ASGIApp) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.reject = reject  # an ASGI app answering 413

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_large = int(value) > self.max_bytes
                except ValueError:
                    too_large = True
                if too_large:
                    await _drain(receive)
                    await self.reject(scope, receive, send)
                    return
        received = 0
        started = False
        body_done = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            if not body_done:
                await _drain(receive)
            await self.reject(scope, receive, send)


def origin_of(url: str) -> str:
    """The origin (scheme://host[:port]) of URL, lower-case, as browsers send it in `Origin`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_cross_site(headers: Mapping[str, str], allowed_origins: Iterable[str]) -> bool:
    """True when a form post comes from another site, judged by Sec-Fetch-Site and Origin.

    Browsers send at least one of them on a POST; an `Origin` that is not the portal's own
    (or `null`, from sandboxed frames and some redirects) is refused even when Sec-Fetch-Site
    is missing, as in older browsers.
    """
    if headers.get("sec-fetch-site", "") in {"cross-site", "same-site"}:
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    return origin.strip().lower() not in {o.lower() for o in allowed_origins}


class TrailingSlashMiddleware:
    """Redirects `/p/<token>/` to `/p/<token>` with a relative Location (no Host reflected).

    Starlette's own slash redirect builds an absolute URL from the `Host` header, so a forged
    Host would send the visitor (and the token in the path) to another server.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and scope.get("method") in {"GET", "HEAD"}
            and len(path) > 1
            and path.endswith("/")
        ):
            location = "/" + path.strip("/")  # never `//host`: that would leave the site
            query = scope.get("query_string", b"")
            if query:
                location += "?" + query.decode("latin-1")
            await send(
                {
                    "type": "http.response.start",
                    "status": 308,
                    "headers": [(b"location", location.encode("latin-1", "replace"))],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (and drops the Server header)."""

    def __init__(self, app: ASGIApp, *, headers: dict[str, str] | None = None) -> None:
        self.app = app
        raw = headers or SECURITY_HEADERS
        self.headers = [(k.lower().encode(), v.encode()) for k, v in raw.items()]
        self.names = {k for k, _ in self.headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() not in self.names
                ]
                message = {**message, "headers": kept + self.headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
