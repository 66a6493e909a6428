"""The portal: one page per personal link with questionnaire, checklist and contacts.

The campaign and the municipality always come from the link's token (looked up by its hash),
never from the form. Pages work without JavaScript; every POST carries a CSRF token and ends in
a redirect (303) or, when something is wrong, the same page with the errors marked.

This module holds the routes and the checks every request passes; ``handlers`` parses the
forms and calls ``efa_rollout/services``, ``view`` renders, ``texts`` holds the words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from efa_rollout.db import get_engine, session_scope
from efa_rollout.portal import handlers
from efa_rollout.portal.middleware import (
    MAX_BODY_BYTES,
    SECURITY_HEADERS,
    LimitBodyMiddleware,
    SecurityHeadersMiddleware,
    TrailingSlashMiddleware,
    is_cross_site,
    origin_of,
)
from efa_rollout.portal.security import CsrfSigner, FailureBrake, load_secret, parse_trusted_proxies
from efa_rollout.portal.texts import PORTAL_TEMPLATES, PortalTexts
from efa_rollout.portal.view import PageView, Posted, Target
from efa_rollout.services.links import TokenState, check_token
from efa_rollout.services.lookup import campaign_definition, enrolment_of_link
from efa_rollout.settings import Settings, get_settings
from models import utcnow

__all__ = ["PORTAL_TEMPLATES", "Portal", "Refusal", "create_app"]

STATIC_DIR = PORTAL_TEMPLATES / "static"

_log = logging.getLogger("efa_rollout.portal")

Handler = Callable[[PageView, Session, Target, str, FormData], Response]


@dataclass(frozen=True)
class Refusal:
    """A request turned away; ``bad_link`` ones count against the sender's address."""

    status: int
    bad_link: bool = False


def _address(request: Request) -> str:
    return request.client.host if request.client else "unbekannt"


class Portal:
    """Routes of the portal and the checks before any page or form; one per application."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        signer: CsrfSigner,
        brake: FailureBrake,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.signer = signer
        self.brake = brake
        self.clock = clock
        self.texts = PortalTexts()
        self.view = PageView(settings=settings, signer=signer, texts=self.texts, clock=clock)

    async def _finish(self, request: Request, result: Response | Refusal) -> Response:
        # Only bad links are braked, after they were checked: a valid link always opens.
        if isinstance(result, Response):
            return result
        if result.bad_link:
            penalty = await self.brake.penalise(_address(request))
            if penalty.blocked:
                retry = {"Retry-After": str(penalty.retry_after)}
                return self.view.error_response(429, headers=retry)
        return self.view.error_response(result.status)

    def target_for(self, session: Session, token: str) -> Target | Refusal:
        """What TOKEN grants access to, or why it is refused (hash lookup, expiry, revocation)."""
        check = check_token(session, token, now=self.clock())
        if not check.valid or check.row is None:
            return Refusal(404 if check.state is TokenState.UNKNOWN else 410, bad_link=True)
        found = enrolment_of_link(session, check.row.campaign_id, check.row.ags)
        if found is None:
            return Refusal(410, bad_link=True)
        campaign, enrolment, municipality = found
        definition = campaign_definition(campaign)
        return Target(check.row, campaign, enrolment, municipality, definition)

    def _check_post(self, request: Request, target: Target, form: FormData) -> Refusal | None:
        own = (origin_of(self.settings.portal_base_url), origin_of(str(request.base_url)))
        if is_cross_site(request.headers, own):
            return Refusal(403)
        csrf = form.get("csrf")
        if not self.signer.verify(target.token.token_hash, csrf if isinstance(csrf, str) else None):
            return Refusal(403)
        if target.read_only:
            return Refusal(409)
        return None

    # -- routes -----------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return self.view.index()

    async def page(self, request: Request) -> Response:
        token = request.path_params["token"]
        notice = self.texts.notice(request.query_params.get("ok", ""))

        def work() -> Response | Refusal:
            with session_scope(self.engine) as session:
                target = self.target_for(session, token)
                if isinstance(target, Refusal):
                    return target
                return self.view.render(session, target, token, Posted(notice=notice))

        return await self._finish(request, await run_in_threadpool(work))

    async def _post(self, request: Request, handler: Handler) -> Response:
        token = request.path_params["token"]
        try:
            form = await request.form(max_files=0, max_fields=4000, max_part_size=MAX_BODY_BYTES)
        except MultiPartException:
            return self.view.error_response(400)

        def work() -> Response | Refusal:
            with session_scope(self.engine) as session:
                target = self.target_for(session, token)
                if isinstance(target, Refusal):
                    return target
                refusal = self._check_post(request, target, form)
                if refusal is not None:
                    return refusal
                return handler(self.view, session, target, token, form)

        return await self._finish(request, await run_in_threadpool(work))

    async def post_answers(self, request: Request) -> Response:
        return await self._post(request, handlers.save_answers_form)

    async def post_checklist(self, request: Request) -> Response:
        return await self._post(request, handlers.save_checklist_form)

    async def post_contacts(self, request: Request) -> Response:
        return await self._post(request, handlers.save_contacts_form)

    def save_answers(
        self, session: Session, target: Target, token: str, form: FormData
    ) -> Response:
        """The questionnaire form's handler, for a checked TARGET (used by scripts/e2e_portal)."""
        return handlers.save_answers_form(self.view, session, target, token, form)

    # -- errors -----------------------------------------------------------------------------

    async def reject_too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The 413 page, as an ASGI app for LimitBodyMiddleware."""
        too_large = self.view.error_response(413, headers={"Connection": "close"})
        await too_large(scope, receive, send)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's HTTP errors (404, 405, …) as the portal's error pages."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return self.view.error_response(status if self.texts.has_error_page(status) else 404)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        """Any other exception: logged by type only (never with the token), the 500 page."""
        _log.error("Fehler im Portal: %s", type(exc).__name__)
        response = self.view.error_response(500)
        response.headers.update(SECURITY_HEADERS)  # this handler runs outside the middleware
        return response

    def routes(self) -> list[BaseRoute]:
        """The portal's pages and forms, the static files and the small plain answers."""
        return [
            Route("/", self.index),
            Route("/robots.txt", _robots),
            Route("/healthz", _health),
            Route("/favicon.ico", _no_icon),
            Route("/p/{token}", self.page, methods=["GET"]),
            Route("/p/{token}/fragebogen", self.post_answers, methods=["POST"]),
            Route("/p/{token}/checkliste", self.post_checklist, methods=["POST"]),
            Route("/p/{token}/kontakte", self.post_contacts, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]


async def _robots(request: Request) -> Response:
    return PlainTextResponse("User-agent: *\nDisallow: /\n")


async def _health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def _no_icon(request: Request) -> Response:
    return Response(status_code=204)


def create_app(
    *,
    engine: Engine | None = None,
    settings: Settings | None = None,
    secret: bytes | None = None,
    brake: FailureBrake | None = None,
    clock: Callable[[], datetime] = utcnow,
    max_body_bytes: int = MAX_BODY_BYTES,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The portal as an ASGI application (served by ``efa portal``)."""
    settings = settings or get_settings()
    portal = Portal(
        engine=engine or get_engine(),
        settings=settings,
        signer=CsrfSigner(secret or load_secret(settings.data_dir)),
        brake=brake or FailureBrake(),
        clock=clock,
    )
    app = Starlette(
        routes=[*portal.routes(), *extra_routes],
        middleware=[
            Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_proxies(settings)),
            Middleware(SecurityHeadersMiddleware),
            Middleware(TrailingSlashMiddleware),
            Middleware(
                LimitBodyMiddleware, max_bytes=max_body_bytes, reject=portal.reject_too_large
            ),
        ],
        exception_handlers={HTTPException: portal.http_error, Exception: portal.server_error},
    )
    app.router.redirect_slashes = False  # TrailingSlashMiddleware redirects without Host
    app.state.portal = portal
    return app


def trusted_proxies(settings: Settings) -> list[str]:
    """The reverse proxies whose X-Forwarded-For names the client (EFA_PORTAL_TRUSTED_PROXIES)."""
    return parse_trusted_proxies(settings.portal_trusted_proxies)
