"""HTTP-level protections of the portal: body size limit, security headers, slash redirects,
the origin check of form posts.

The personal link is the only credential, so these keep it from leaking (no referrer, no
caching, no Host reflected in redirects) and keep other sites from posting forms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "MAX_BODY_BYTES",
    "SECURITY_HEADERS",
    "BodyTooLarge",
    "LimitBodyMiddleware",
    "SecurityHeadersMiddleware",
    "TrailingSlashMiddleware",
    "is_cross_site",
    "origin_of",
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
