"""The portal: one page per personal link with questionnaire, checklist and contacts.

The campaign and the municipality always come from the link's token (looked up by its hash),
never from the form. Pages work without JavaScript; every POST carries a CSRF token and ends in
a redirect (303) or, when something is wrong, the same page with the errors marked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from efa_rollout import TEMPLATES_DIR
from efa_rollout.db import get_engine, session_scope
from efa_rollout.definitions import CampaignDefinition, QuestionField
from efa_rollout.domain import phrasing
from efa_rollout.domain.contacts import MAX_CONTACT_TEXT, SALUTATIONS, is_phone
from efa_rollout.domain.stages import CampaignStatus, ResponseStatus, Stage
from efa_rollout.domain.text import as_date, german_date, german_weekday_date, signature
from efa_rollout.mail.message import InvalidAddressError, contact_address
from efa_rollout.portal.forms import (
    CONTACT_LABELS,
    MAX_CONTACT_ROWS,
    MAX_ROWS,
    MIN_ROWS,
    ContactRow,
    FormValues,
    answers_from_values,
    contact_rows_from_form,
    row_count,
    values_from_answers,
    values_from_form,
)
from efa_rollout.portal.security import (
    MAX_BODY_BYTES,
    SECURITY_HEADERS,
    CsrfSigner,
    FailureBrake,
    LimitBodyMiddleware,
    SecurityHeadersMiddleware,
    TrailingSlashMiddleware,
    is_cross_site,
    load_secret,
    origin_of,
    parse_trusted_proxies,
)
from efa_rollout.services.answers import (
    AnswersInvalid,
    format_answer,
    latest_response,
    response_versions,
    save_answers,
)
from efa_rollout.services.checklist import checklist_view, set_checklist_item
from efa_rollout.services.contacts import (
    CONTACT_KEYS,
    ContactChange,
    apply_contact_changes,
    contacts_of,
)
from efa_rollout.services.links import TokenState, check_token
from efa_rollout.services.lookup import campaign_definition, enrolment_of_link
from efa_rollout.settings import Settings, get_settings
from models import (
    Campaign,
    Contact,
    Enrolment,
    Municipality,
    PortalToken,
    QuestionnaireResponse,
    utcnow,
)

__all__ = ["PORTAL_TEMPLATES", "Portal", "create_app"]

PORTAL_TEMPLATES = TEMPLATES_DIR / "portal"
STATIC_DIR = PORTAL_TEMPLATES / "static"

_log = logging.getLogger("efa_rollout.portal")


#: Key dates shown on the page, with their German labels.
DATE_LABELS = {
    "collection_deadline": "Rückmeldung bis",
    "summary": "Zusammenfassung an alle Gemeinden",
    "pilot_start": "Beginn der Pilotphase",
    "silent_go_live": "Silent Go-Live (nur Testbeteiligte)",
    "trainings": "Schulung",
    "go_live": "Go-Live",
    "mandatory_from": "Verpflichtende digitale Nutzung ab",
    "after_care_until": "Nachbetreuung bis",
}

SOURCE_LABELS = {
    "portal": "über das Portal",
    "cli": "vom Landratsamt erfasst",
    "import": "aus einer Tabelle übernommen",
    "prefect": "automatisch übernommen",
}

#: Roles a municipality can give its contacts (besides those the campaign names).
COMMON_ROLES = (
    "Hauptamt",
    "Bürgermeister",
    "Meldebehörde",
    "Bauamt",
    "IT",
    "Datenschutz",
)

NOTICES = {
    "entwurf": ("success", "Ihr Entwurf wurde gespeichert. Er ist noch nicht abgesendet."),
    "abgesendet": (
        "success",
        "Vielen Dank. Ihre Angaben wurden abgesendet. Eine Eingangsbestätigung geht per "
        "E-Mail an die hinterlegten Ansprechpersonen Ihrer Verwaltung.",
    ),
    "checkliste": ("success", "Die Checkliste wurde gespeichert."),
    "kontakte": ("success", "Die Ansprechpersonen wurden gespeichert."),
    "unveraendert": ("info", "Es gab keine Änderungen; es wurde nichts gespeichert."),
}

ERROR_PAGES = {
    400: (
        "Die Anfrage ist unvollständig",
        "Bitte laden Sie die Seite neu und versuchen Sie es erneut.",
    ),
    403: (
        "Die Anfrage wurde abgelehnt",
        "Das Formular ist nicht mehr gültig oder stammt nicht von dieser Seite. Bitte öffnen Sie "
        "den Link aus Ihrer E-Mail erneut und geben Sie Ihre Angaben noch einmal ein.",
    ),
    404: (
        "Dieser Link ist ungültig",
        "Bitte prüfen Sie, ob Sie den Link vollständig aus der E-Mail übernommen haben.",
    ),
    405: ("Diese Anfrage ist nicht möglich", "Bitte öffnen Sie den Link aus Ihrer E-Mail."),
    409: (
        "Keine Änderungen mehr möglich",
        "Diese Kampagne ist abgeschlossen; Angaben können nicht mehr geändert werden.",
    ),
    410: (
        "Dieser Link ist nicht mehr gültig",
        "Der Link ist abgelaufen oder wurde durch einen neueren ersetzt. Bitte verwenden Sie den "
        "Link aus der neuesten E-Mail oder fordern Sie einen neuen Link an.",
    ),
    413: (
        "Die Angaben sind zu umfangreich",
        "Die übermittelten Daten überschreiten die zulässige Größe. Bitte kürzen Sie lange Texte.",
    ),
    429: (
        "Zu viele Versuche",
        "Von Ihrem Anschluss wurden zu viele ungültige Links aufgerufen. Bitte warten Sie eine "
        "Minute und versuchen Sie es dann erneut.",
    ),
    500: (
        "Es ist ein Fehler aufgetreten",
        "Ihre Angaben konnten nicht verarbeitet werden. Bitte versuchen Sie es später erneut.",
    ),
}


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------


def fmt_date(value: date | datetime | str | None) -> str:
    """DD.MM.YYYY."""
    return "" if value is None else german_date(value)


def fmt_long_date(value: date | datetime | str | None) -> str:
    """Weekday, DD.MM.YYYY."""
    return "" if value is None else german_weekday_date(value)


_TOWN_TYPES = {"60": "Markt", "61": "Stadt", "62": "Stadt", "63": "Stadt", "67": "Stadt"}


def municipality_label(municipality: Municipality) -> str:
    """'Gemeinde Essingen', 'Stadt Aalen' (the same wording as the mails)."""
    return f"{_TOWN_TYPES.get(municipality.type_code or '', 'Gemeinde')} {municipality.name}"


# ---------------------------------------------------------------------------------------------
# Page state
# ---------------------------------------------------------------------------------------------


@dataclass
class Target:
    """What a valid token grants access to: one enrolment of one campaign."""

    token: PortalToken
    campaign: Campaign
    enrolment: Enrolment
    municipality: Municipality
    definition: CampaignDefinition

    @property
    def fields(self) -> list[QuestionField]:
        return self.definition.fields_for(self.enrolment.role, self.enrolment.is_pilot)

    @property
    def read_only_reason(self) -> str | None:
        if self.campaign.status == CampaignStatus.CLOSED:
            return (
                "Diese Kampagne ist abgeschlossen. Ihre Angaben können nicht mehr geändert werden."
            )
        if self.enrolment.status == "not_applicable":
            return "Ihre Gemeinde ist von dieser Kampagne nicht betroffen."
        return None

    @property
    def author(self) -> str:
        return f"Portal ({municipality_label(self.municipality)})"


@dataclass
class Posted:
    """What the user sent, when a page is shown again instead of redirecting."""

    values: FormValues | None = None
    rows: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    checklist: dict[str, tuple[bool, str]] | None = None
    checklist_errors: dict[str, str] = field(default_factory=dict)
    contacts: list[ContactRow] | None = None
    contacts_error: str | None = None
    basis: int | None = None
    notice: tuple[str, str] | None = None


@dataclass(frozen=True)
class Refusal:
    """A request turned away; ``bad_link`` ones count against the sender's address."""

    status: int
    bad_link: bool = False


def _refusal_for(state: TokenState) -> Refusal:
    return Refusal(404 if state is TokenState.UNKNOWN else 410, bad_link=True)


# ---------------------------------------------------------------------------------------------
# The application
# ---------------------------------------------------------------------------------------------


class Portal:
    """Routes and rendering of the portal; one instance per application."""

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
        self.env = Environment(
            loader=FileSystemLoader(PORTAL_TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["datum"] = fmt_date
        self.env.filters["datum_lang"] = fmt_long_date
        self.env.filters["zeitpunkt"] = self.fmt_moment
        self.env.globals["contact_labels"] = CONTACT_LABELS
        self.env.globals["office"] = signature(settings)

    # -- helpers ----------------------------------------------------------------------------

    def fmt_moment(self, value: datetime | None) -> str:
        """'12.03.2025 um 14:05 Uhr' in the configured time zone."""
        if value is None:
            return ""
        local = value.astimezone(self.settings.zone)
        return f"{german_date(local)} um {local.strftime('%H:%M')} Uhr"

    def today(self) -> date:
        return self.clock().astimezone(self.settings.zone).date()

    def error_response(self, status: int, *, headers: Mapping[str, str] | None = None) -> Response:
        """The plain German error page for STATUS; it never shows any campaign data."""
        title, text = ERROR_PAGES.get(status, ERROR_PAGES[500])
        html = self.env.get_template("error.html").render(status=status, title=title, text=text)
        return HTMLResponse(html, status_code=status, headers=dict(headers or {}))

    async def _finish(self, request: Request, result: Response | Refusal) -> Response:
        # Only bad links are braked, after they were checked: a valid link always opens.
        if isinstance(result, Response):
            return result
        if result.bad_link:
            penalty = await self.brake.penalise(_address(request))
            if penalty.blocked:
                return self.error_response(429, headers={"Retry-After": str(penalty.retry_after)})
        return self.error_response(result.status)

    def target_for(self, session: Session, token: str) -> Target | Refusal:
        """What TOKEN grants access to, or why it is refused (hash lookup, expiry, revocation)."""
        check = check_token(session, token, now=self.clock())
        if not check.valid:
            return _refusal_for(check.state)
        row = check.row
        assert row is not None
        found = enrolment_of_link(session, row.campaign_id, row.ags)
        if found is None:
            return Refusal(410, bad_link=True)
        campaign, enrolment, municipality = found
        return Target(row, campaign, enrolment, municipality, campaign_definition(campaign))

    def _check_post(self, request: Request, target: Target, form: FormData) -> Refusal | None:
        own = (origin_of(self.settings.portal_base_url), origin_of(str(request.base_url)))
        if is_cross_site(request.headers, own):
            return Refusal(403)
        csrf = form.get("csrf")
        if not self.signer.verify(target.token.token_hash, csrf if isinstance(csrf, str) else None):
            return Refusal(403)
        if target.read_only_reason:
            return Refusal(409)
        return None

    # -- routes -----------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        html = self.env.get_template("index.html").render()
        return HTMLResponse(html)

    async def page(self, request: Request) -> Response:
        token = request.path_params["token"]
        notice = NOTICES.get(request.query_params.get("ok", ""))

        def work() -> Response | Refusal:
            with session_scope(self.engine) as session:
                target = self.target_for(session, token)
                if isinstance(target, Refusal):
                    return target
                return self.render(session, target, token, Posted(notice=notice))

        return await self._finish(request, await run_in_threadpool(work))

    async def _post(
        self, request: Request, handler: Callable[[Session, Target, str, FormData], Response]
    ) -> Response:
        token = request.path_params["token"]
        try:
            form = await request.form(max_files=0, max_fields=4000, max_part_size=MAX_BODY_BYTES)
        except MultiPartException:
            return self.error_response(400)

        def work() -> Response | Refusal:
            with session_scope(self.engine) as session:
                target = self.target_for(session, token)
                if isinstance(target, Refusal):
                    return target
                refusal = self._check_post(request, target, form)
                if refusal is not None:
                    return refusal
                return handler(session, target, token, form)

        return await self._finish(request, await run_in_threadpool(work))

    async def post_answers(self, request: Request) -> Response:
        return await self._post(request, self.save_answers)

    async def post_checklist(self, request: Request) -> Response:
        return await self._post(request, self.save_checklist)

    async def post_contacts(self, request: Request) -> Response:
        return await self._post(request, self.save_contacts)

    # -- questionnaire ----------------------------------------------------------------------

    def save_answers(
        self, session: Session, target: Target, token: str, form: FormData
    ) -> Response:
        fields = target.fields
        values = values_from_form(fields, form)
        rows = {q.key: row_count(form, q.key) for q in fields if q.type == "contacts"}
        action = str(form.get("aktion") or "entwurf")
        if action.startswith("zeile:"):
            key = action.removeprefix("zeile:")
            if key in rows:
                rows[key] = min(rows[key] + 1, MAX_ROWS)
            notice = (
                "info",
                "Eine weitere Zeile wurde hinzugefügt. Ihre Eingaben sind noch nicht gespeichert "
                "– bitte »Entwurf speichern« oder »Absenden« wählen.",
            )
            posted = Posted(values=values, rows=rows, notice=notice, basis=_int(form.get("basis")))
            return self.render(session, target, token, posted, anchor_key=key)
        if action not in {"entwurf", "absenden"}:
            return self.error_response(400)
        submit = action == "absenden"
        latest = latest_response(session, _id(target.enrolment))
        current = latest.version if latest else 0
        basis = _int(form.get("basis"))
        if basis is not None and basis != current:
            assert latest is not None
            who = SOURCE_LABELS.get(latest.source, latest.source)
            notice = (
                "warning",
                f"Während Sie das Formular bearbeitet haben, wurde eine neuere Fassung "
                f"(Version {latest.version}, {who} am {self.fmt_moment(latest.created_at)}) "
                "gespeichert. Ihre Eingaben sind unten zu sehen und noch nicht gespeichert. "
                "Bitte prüfen Sie sie und speichern Sie dann erneut.",
            )
            posted = Posted(values=values, rows=rows, notice=notice, basis=current)
            return self.render(session, target, token, posted, status=409)
        now = self.clock()
        try:
            response = save_answers(
                session,
                enrolment=target.enrolment,
                answers=answers_from_values(fields, values),
                submit=submit,
                source="portal",
                author=target.author,
                now=now,
            )
        except AnswersInvalid as error:
            posted = Posted(values=values, rows=rows, errors=error.errors, basis=current)
            return self.render(session, target, token, posted, status=422)
        if submit:
            self._queue_confirmation(session, target, response, now)
        return _see_other(token, "abgesendet" if submit else "entwurf", "stand")

    def _queue_confirmation(
        self, session: Session, target: Target, response: QuestionnaireResponse, now: datetime
    ) -> None:
        from efa_rollout.services.outbox import queue_campaign_mail

        fields = {q.key: q for q in target.definition.questionnaire}
        received = [
            {"label": fields[key].label, "value": format_answer(fields[key], value)}
            for key, value in response.answers.items()
            if key in fields
        ]
        queue_campaign_mail(
            session,
            campaign=target.campaign,
            enrolment=target.enrolment,
            municipality=target.municipality,
            kind="submission_confirmation",
            sequence=response.version,
            now=now,
            extra={
                "version": response.version,
                "submitted_at": now,
                "complete": response.complete,
                "missing": [],
                "received": received,
            },
        )

    # -- checklist --------------------------------------------------------------------------

    def save_checklist(
        self, session: Session, target: Target, token: str, form: FormData
    ) -> Response:
        view = checklist_view(session, target.enrolment, target.definition, today=self.today())
        ticked = set(form.getlist("erledigt"))
        posted: dict[str, tuple[bool, str]] = {}
        errors: dict[str, str] = {}
        for item in view:
            if not _editable(item):
                continue
            note = _field_text(form, f"notiz.{item['key']}")
            posted[item["key"]] = (item["key"] in ticked, note)
            if len(note) > 2000:
                errors[item["key"]] = "Die Bemerkung ist zu lang (höchstens 2000 Zeichen)."
        if errors:
            state = Posted(checklist=posted, checklist_errors=errors)
            return self.render(session, target, token, state, status=422)
        changed = 0
        now = self.clock()
        for item in view:
            if item["key"] not in posted:
                continue
            done, note = posted[item["key"]]
            if done == item["done"] and note == (item["note"] or ""):
                continue
            set_checklist_item(
                session,
                enrolment=target.enrolment,
                item_key=item["key"],
                done=done,
                note=note,
                source="portal",
                author=target.author,
                now=now,
            )
            changed += 1
        return _see_other(token, "checkliste" if changed else "unveraendert", "checkliste")

    # -- contacts ---------------------------------------------------------------------------

    def role_options(self, target: Target, existing: Sequence[str]) -> list[str]:
        roles = [
            *target.definition.contact_roles,
            *target.definition.reminders.escalation_roles,
            *COMMON_ROLES,
            *existing,
        ]
        return list(dict.fromkeys(r for r in roles if r))

    def save_contacts(
        self, session: Session, target: Target, token: str, form: FormData
    ) -> Response:
        existing = {c.id: c for c in contacts_of(session, target.municipality.ags)}
        rows = contact_rows_from_form(form)
        roles = self.role_options(target, [c.role for c in existing.values()])
        if str(form.get("aktion") or "") == "zeile":
            rows.append(ContactRow())
            notice = (
                "info",
                "Eine weitere Zeile wurde hinzugefügt. Die Ansprechpersonen sind noch nicht "
                "gespeichert – bitte »Ansprechpersonen speichern« wählen.",
            )
            return self.render(
                session, target, token, Posted(contacts=rows, notice=notice), anchor_key="k"
            )
        problem = _validate_contacts(rows, existing, roles)
        if problem is not None or any(r.errors for r in rows):
            state = Posted(contacts=rows, contacts_error=problem)
            return self.render(session, target, token, state, status=422)
        changes = [
            ContactChange(
                id=row.id,
                delete=row.delete,
                data={
                    "role": row.role,
                    "salutation": row.salutation or None,
                    "salutation_title": row.salutation_title or None,
                    "name": row.name or None,
                    "function": row.function or None,
                    "email": row.email,
                    "phone": row.phone or None,
                    "is_shared_mailbox": row.shared_mailbox,
                },
            )
            for row in rows
            if not row.blank
        ]
        changed = apply_contact_changes(
            session,
            existing,
            changes,
            ags=target.municipality.ags,
            campaign_id=target.campaign.id,
            enrolment_id=target.enrolment.id,
            actor=target.author,
            now=self.clock(),
        )
        if not changed:
            return _see_other(token, "unveraendert", "kontakte")
        return _see_other(token, "kontakte", "kontakte")

    # -- rendering --------------------------------------------------------------------------

    def render(
        self,
        session: Session,
        target: Target,
        token: str,
        posted: Posted,
        *,
        status: int = 200,
        anchor_key: str | None = None,
    ) -> Response:
        """The portal page of TARGET, with POSTED input and errors when shown again."""
        enrolment_id = _id(target.enrolment)
        fields = target.fields
        versions = response_versions(session, enrolment_id)
        latest = versions[0] if versions else None
        submitted = next((v for v in versions if v.status == ResponseStatus.SUBMITTED), None)
        values = posted.values
        if values is None:
            values = values_from_answers(fields, latest.answers if latest else {})
        rows = {
            q.key: max(
                posted.rows.get(q.key, 0),
                len(values[q.key]) + (0 if posted.values is not None else 1),
                MIN_ROWS,
            )
            for q in fields
            if q.type == "contacts"
        }
        for key, count in rows.items():
            padding = [dict.fromkeys(CONTACT_KEYS, "") for _ in range(count - len(values[key]))]
            values[key] = [*values[key], *padding]

        today = self.today()
        checklist = checklist_view(session, target.enrolment, target.definition, today=today)
        checklist = phrasing.current_first(checklist, today)
        for item in checklist:
            item["editable"] = _editable(item)
            item["error"] = posted.checklist_errors.get(item["key"])
            if posted.checklist is not None and item["key"] in posted.checklist:
                item["form_done"], item["form_note"] = posted.checklist[item["key"]]
            else:
                item["form_done"], item["form_note"] = item["done"], item["note"] or ""

        contacts = contacts_of(session, target.municipality.ags)
        contact_rows = posted.contacts
        if contact_rows is None:
            contact_rows = [_row_of(c) for c in contacts] + [ContactRow()]
        roles = self.role_options(target, [c.role for c in contacts])

        summary = self._error_summary(target, posted, contact_rows, checklist)
        key_dates = self._key_dates(target)
        deadline = next((e["date"] for e in key_dates if e["key"] == "collection_deadline"), None)
        html = self.env.get_template("page.html").render(
            token=token,
            csrf=self.signer.token_for(target.token.token_hash),
            campaign=target.campaign,
            definition=target.definition,
            municipality=target.municipality,
            municipality_label=municipality_label(target.municipality),
            stage_label=_stage_label(target.enrolment.stage),
            key_dates=key_dates,
            today=today,
            answer_request=phrasing.answer_request(
                deadline,
                today,
                submitted=submitted is not None,
                collecting=_collecting(target.enrolment.stage),
            ),
            fields=fields,
            values=values,
            errors=posted.errors,
            basis=posted.basis if posted.basis is not None else (latest.version if latest else 0),
            checklist=checklist,
            contact_rows=contact_rows,
            contacts_error=posted.contacts_error,
            roles=roles,
            versions=[_version_view(v, self) for v in versions],
            latest=_version_view(latest, self) if latest else None,
            submitted=_version_view(submitted, self) if submitted else None,
            summary=summary,
            notice=posted.notice,
            read_only=target.read_only_reason,
            anchor_key=anchor_key,
            max_contact_rows=MAX_CONTACT_ROWS,
        )
        return HTMLResponse(html, status_code=status)

    def _key_dates(self, target: Target) -> list[dict[str, Any]]:
        dates = dict(target.campaign.dates)
        if target.enrolment.go_live is not None:
            dates["go_live"] = target.enrolment.go_live.isoformat()
        entries: list[dict[str, Any]] = []
        for key, label in DATE_LABELS.items():
            value = dates.get(key)
            if not value:
                continue
            if key in {"pilot_start", "silent_go_live"} and not target.enrolment.is_pilot:
                continue
            days = value if isinstance(value, list) else [value]
            for day in days:
                entries.append(
                    {
                        "key": key,
                        "label": label,
                        "date": as_date(day),
                        "strong": key == "collection_deadline",
                    }
                )
        return sorted(entries, key=lambda e: e["date"])

    def _error_summary(
        self,
        target: Target,
        posted: Posted,
        contact_rows: Sequence[ContactRow],
        checklist: Sequence[dict[str, Any]],
    ) -> list[dict[str, str]]:
        entries: list[dict[str, str]] = []
        by_key = {q.key: q for q in target.fields}
        for key, message in posted.errors.items():
            question = by_key.get(key)
            label = question.label if question else key
            entries.append(
                {
                    "href": "#" + anchor_of(question) if question else "#fragebogen",
                    "text": f"{label} – {message}",
                }
            )
        for item in checklist:
            if item["error"]:
                entries.append(
                    {"href": f"#c-{item['key']}-note", "text": f"{item['title']} – {item['error']}"}
                )
        if posted.contacts_error:
            entries.append(
                {"href": "#kontakte", "text": f"Ansprechpersonen – {posted.contacts_error}"}
            )
        for n, row in enumerate(contact_rows):
            for sub, message in row.errors.items():
                entries.append(
                    {
                        "href": f"#k-{n}-{sub}",
                        "text": f"Ansprechperson, Eintrag {n + 1} – {message}",
                    }
                )
        return entries


def anchor_of(question: QuestionField) -> str:
    """The id of the first input of QUESTION (the target of links in the error summary)."""
    if question.type == "contact":
        return f"f-{question.key}-salutation"
    if question.type == "contacts":
        return f"f-{question.key}-0-salutation"
    if question.type in {"yesno", "choice"}:
        return f"f-{question.key}-0"
    return f"f-{question.key}"


def _editable(item: Mapping[str, Any]) -> bool:
    return str(item.get("owner", "Gemeinde")) == "Gemeinde"


def _collecting(stage: str) -> bool:
    """True while the municipality is still expected to answer the questionnaire."""
    later = {Stage.GO_LIVE, Stage.AFTER_CARE, Stage.MANDATORY, Stage.COMPLETED}
    return stage not in {s.value for s in later}


def _stage_label(stage: str) -> str:
    try:
        return Stage(stage).label
    except ValueError:
        return stage


def _version_view(response: QuestionnaireResponse, portal: Portal) -> dict[str, Any]:
    return {
        "version": response.version,
        "submitted": response.status == ResponseStatus.SUBMITTED,
        "complete": response.complete,
        "at": portal.fmt_moment(response.created_at),
        "source": SOURCE_LABELS.get(response.source, response.source),
    }


def _row_of(contact: Contact) -> ContactRow:
    return ContactRow(
        id=contact.id,
        role=contact.role,
        salutation=contact.salutation or "",
        salutation_title=contact.salutation_title or "",
        name=contact.name or "",
        function=contact.function or "",
        email=contact.email,
        phone=contact.phone or "",
        shared_mailbox=contact.is_shared_mailbox,
    )


def _validate_contacts(
    rows: list[ContactRow], existing: Mapping[int | None, Contact], roles: Sequence[str]
) -> str | None:
    """Mark errors on ROWS; returns a message about the list as a whole, if any."""
    seen: dict[tuple[str, str], int] = {}
    remaining = 0
    for n, row in enumerate(rows):
        if row.blank:
            continue
        if row.id is not None and row.id not in existing:
            row.errors["name"] = "Diesen Eintrag gibt es nicht mehr. Bitte laden Sie die Seite neu."
            continue
        if row.delete:
            continue
        remaining += 1
        if row.role not in roles:
            row.errors["role"] = "Bitte wählen Sie eine Aufgabe aus der Liste."
        if row.salutation and row.salutation not in SALUTATIONS:
            row.errors["salutation"] = "Bitte wählen Sie Frau, Herr oder keine Anrede."
        if not row.shared_mailbox and not row.name:
            row.errors["name"] = (
                "Bitte geben Sie den Namen an (bei einem Funktionspostfach nicht nötig)."
            )
        if len(row.name) > MAX_CONTACT_TEXT:
            row.errors["name"] = f"Der Name ist zu lang (höchstens {MAX_CONTACT_TEXT} Zeichen)."
        if len(row.function) > MAX_CONTACT_TEXT:
            row.errors["function"] = (
                f"Die Funktion ist zu lang (höchstens {MAX_CONTACT_TEXT} Zeichen)."
            )
        if not row.email:
            row.errors["email"] = "Bitte geben Sie die dienstliche E-Mail-Adresse an."
        else:
            try:
                row.email = contact_address(row.email)
            except InvalidAddressError as error:
                row.errors["email"] = error.message
        if row.phone and not is_phone(row.phone):
            row.errors["phone"] = (
                f"»{row.phone}« ist keine gültige Telefonnummer (z. B. 07361 503-1234)."
            )
        pair = (row.role, row.email.casefold())
        if row.email and pair in seen:
            row.errors["email"] = (
                f"Diese Adresse ist für »{row.role}« schon in Eintrag {seen[pair] + 1} genannt."
            )
        seen.setdefault(pair, n)
    if remaining == 0:
        return "Bitte nennen Sie mindestens eine Ansprechperson oder ein Funktionspostfach."
    return None


def _address(request: Request) -> str:
    return request.client.host if request.client else "unbekannt"


def _id(enrolment: Enrolment) -> int:
    assert enrolment.id is not None
    return enrolment.id


def _int(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdigit() and len(value) < 10:
        return int(value)
    return None


def _field_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _see_other(token: str, ok: str, anchor: str) -> Response:
    return RedirectResponse(f"/p/{token}?ok={ok}#{anchor}", status_code=303)


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
    engine = engine or get_engine()
    portal = Portal(
        engine=engine,
        settings=settings,
        signer=CsrfSigner(secret or load_secret(settings.data_dir)),
        brake=brake or FailureBrake(),
        clock=clock,
    )

    async def reject_too_large(scope: Scope, receive: Receive, send: Send) -> None:
        await portal.error_response(413, headers={"Connection": "close"})(scope, receive, send)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return portal.error_response(status if status in ERROR_PAGES else 404)

    async def server_error(request: Request, exc: Exception) -> Response:
        _log.error("Fehler im Portal: %s", type(exc).__name__)
        response = portal.error_response(500)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def robots(request: Request) -> Response:
        return PlainTextResponse("User-agent: *\nDisallow: /\n")

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    routes: list[BaseRoute] = [
        Route("/", portal.index),
        Route("/robots.txt", robots),
        Route("/healthz", health),
        Route("/favicon.ico", no_icon),
        Route("/p/{token}", portal.page, methods=["GET"]),
        Route("/p/{token}/fragebogen", portal.post_answers, methods=["POST"]),
        Route("/p/{token}/checkliste", portal.post_checklist, methods=["POST"]),
        Route("/p/{token}/kontakte", portal.post_contacts, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        *extra_routes,
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_proxies(settings)),
            Middleware(SecurityHeadersMiddleware),
            Middleware(TrailingSlashMiddleware),
            Middleware(LimitBodyMiddleware, max_bytes=max_body_bytes, reject=reject_too_large),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.router.redirect_slashes = False  # TrailingSlashMiddleware redirects without Host
    app.state.portal = portal
    return app


def trusted_proxies(settings: Settings) -> list[str]:
    """The reverse proxies whose X-Forwarded-For names the client (EFA_PORTAL_TRUSTED_PROXIES)."""
    return parse_trusted_proxies(settings.portal_trusted_proxies)
