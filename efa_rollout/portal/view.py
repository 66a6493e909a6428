"""Rendering of the portal: the page of one link, with posted input and errors, and error pages.

Everything the page shows is read through ``efa_rollout/services``; the words come from the
templates (``templates/portal/``, messages in the text catalogue ``templates/texts/portal.ini``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlmodel import Session
from starlette.responses import HTMLResponse, Response

from efa_rollout.definitions import CampaignDefinition, QuestionField
from efa_rollout.domain import phrasing
from efa_rollout.domain.stages import CampaignStatus, ResponseStatus, Stage
from efa_rollout.domain.text import as_date, german_date, german_weekday_date, signature
from efa_rollout.mail.context import municipality_label
from efa_rollout.portal.forms import MAX_CONTACT_ROWS, MIN_ROWS, ContactRow, values_from_answers
from efa_rollout.portal.security import CsrfSigner
from efa_rollout.portal.texts import PORTAL_TEMPLATES, Notice, PortalTexts
from efa_rollout.services.answers import response_versions
from efa_rollout.services.checklist import by_municipality, checklist_view
from efa_rollout.services.contacts import CONTACT_KEYS, contacts_of, role_options
from efa_rollout.settings import Settings
from models import Campaign, Contact, Enrolment, Municipality, PortalToken, QuestionnaireResponse

__all__ = ["PageView", "Posted", "Target", "anchor_of"]


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
        """The questions that apply to this municipality."""
        return self.definition.fields_for(self.enrolment.role, self.enrolment.is_pilot)

    @property
    def read_only(self) -> str | None:
        """Why nothing can be changed (a key of the ``read_only`` texts), or None."""
        if self.campaign.status == CampaignStatus.CLOSED:
            return "closed"
        if self.enrolment.status == "not_applicable":
            return "not_applicable"
        return None

    @property
    def enrolment_id(self) -> int:
        """The enrolment's id (always set for a stored enrolment)."""
        assert self.enrolment.id is not None
        return self.enrolment.id


@dataclass
class Posted:
    """What the user sent, when a page is shown again instead of redirecting."""

    values: dict[str, Any] | None = None
    rows: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    checklist: dict[str, tuple[bool, str]] | None = None
    checklist_errors: dict[str, str] = field(default_factory=dict)
    contacts: list[ContactRow] | None = None
    contacts_error: str | None = None
    basis: int | None = None
    notice: Notice | None = None


def anchor_of(question: QuestionField) -> str:
    """The id of the first input of QUESTION (the target of links in the error summary)."""
    if question.type == "contact":
        return f"f-{question.key}-salutation"
    if question.type == "contacts":
        return f"f-{question.key}-0-salutation"
    if question.type in {"yesno", "choice"}:
        return f"f-{question.key}-0"
    return f"f-{question.key}"


def _collecting(stage: str) -> bool:
    """True while the municipality is still expected to answer the questionnaire."""
    later = {Stage.GO_LIVE, Stage.AFTER_CARE, Stage.MANDATORY, Stage.COMPLETED}
    return stage not in {s.value for s in later}


def _stage_label(stage: str) -> str:
    try:
        return Stage(stage).label
    except ValueError:
        return stage


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


def _fmt_date(value: date | datetime | str | None) -> str:
    return "" if value is None else german_date(value)


def _fmt_long_date(value: date | datetime | str | None) -> str:
    return "" if value is None else german_weekday_date(value)


class PageView:
    """The Jinja environment of the portal and the pages rendered with it."""

    def __init__(
        self,
        *,
        settings: Settings,
        signer: CsrfSigner,
        texts: PortalTexts,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.signer = signer
        self.texts = texts
        self.clock = clock
        self.env = Environment(
            loader=FileSystemLoader(PORTAL_TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["datum"] = _fmt_date
        self.env.filters["datum_lang"] = _fmt_long_date
        self.env.filters["zeitpunkt"] = self.fmt_moment
        self.env.globals["contact_labels"] = texts.labels("contact_labels")
        self.env.globals["office"] = signature(settings)

    def fmt_moment(self, value: datetime | None) -> str:
        """'12.03.2025 um 14:05 Uhr' in the configured time zone."""
        if value is None:
            return ""
        local = value.astimezone(self.settings.zone)
        return f"{german_date(local)} um {local.strftime('%H:%M')} Uhr"

    def today(self) -> date:
        """Today in the configured time zone."""
        return self.clock().astimezone(self.settings.zone).date()

    def author(self, target: Target) -> str:
        """Who the event log names for a change made through TARGET's link."""
        return self.texts.say("portal.author", municipality=municipality_label(target.municipality))

    def source_label(self, source: str) -> str:
        """Where a saved version came from, in words."""
        return self.texts.label("source_labels", source)

    def index(self) -> Response:
        """The start page (no link: how to get one)."""
        return HTMLResponse(self.env.get_template("index.html").render())

    def error_response(self, status: int, *, headers: Mapping[str, str] | None = None) -> Response:
        """The plain German error page for STATUS; it never shows any campaign data."""
        title, text = self.texts.error_page(status)
        html = self.env.get_template("error.html").render(status=status, title=title, text=text)
        return HTMLResponse(html, status_code=status, headers=dict(headers or {}))

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
        context = {
            **self._questionnaire(session, target, posted),
            **self._checklist(session, target, posted),
            **self._contacts(session, target, posted),
        }
        key_dates = self._key_dates(target)
        deadline = next((e["date"] for e in key_dates if e["key"] == "collection_deadline"), None)
        today = self.today()
        html = self.env.get_template("page.html").render(
            **context,
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
                submitted=context["submitted"] is not None,
                collecting=_collecting(target.enrolment.stage),
            ),
            summary=self._error_summary(target, posted, context),
            notice=posted.notice,
            read_only=self.texts.label("read_only", target.read_only) if target.read_only else None,
            anchor_key=anchor_key,
            max_contact_rows=MAX_CONTACT_ROWS,
        )
        return HTMLResponse(html, status_code=status)

    def _questionnaire(self, session: Session, target: Target, posted: Posted) -> dict[str, Any]:
        fields = target.fields
        versions = response_versions(session, target.enrolment_id)
        latest = versions[0] if versions else None
        submitted = next((v for v in versions if v.status == ResponseStatus.SUBMITTED), None)
        values = posted.values
        if values is None:
            values = values_from_answers(fields, latest.answers if latest else {})
        extra_row = 0 if posted.values is not None else 1  # a fresh page offers an empty row
        for q in fields:
            if q.type == "contacts":
                have = len(values[q.key])
                count = max(posted.rows.get(q.key, 0), have + extra_row, MIN_ROWS)
                blanks = [dict.fromkeys(CONTACT_KEYS, "") for _ in range(count - have)]
                values[q.key] = [*values[q.key], *blanks]
        return {
            "fields": fields,
            "values": values,
            "errors": posted.errors,
            "basis": posted.basis
            if posted.basis is not None
            else (latest.version if latest else 0),
            "versions": [self._version(v) for v in versions],
            "latest": self._version(latest) if latest else None,
            "submitted": self._version(submitted) if submitted else None,
        }

    def _version(self, response: QuestionnaireResponse) -> dict[str, Any]:
        return {
            "version": response.version,
            "submitted": response.status == ResponseStatus.SUBMITTED,
            "complete": response.complete,
            "at": self.fmt_moment(response.created_at),
            "source": self.source_label(response.source),
        }

    def _checklist(self, session: Session, target: Target, posted: Posted) -> dict[str, Any]:
        today = self.today()
        checklist = checklist_view(session, target.enrolment, target.definition, today=today)
        checklist = phrasing.current_first(checklist, today)
        for item in checklist:
            item["editable"] = by_municipality(item)
            item["error"] = posted.checklist_errors.get(item["key"])
            if posted.checklist is not None and item["key"] in posted.checklist:
                item["form_done"], item["form_note"] = posted.checklist[item["key"]]
            else:
                item["form_done"], item["form_note"] = item["done"], item["note"] or ""
        return {"checklist": checklist}

    def _contacts(self, session: Session, target: Target, posted: Posted) -> dict[str, Any]:
        contacts = contacts_of(session, target.municipality.ags)
        rows = posted.contacts
        if rows is None:
            rows = [_row_of(c) for c in contacts] + [ContactRow()]
        return {
            "contact_rows": rows,
            "contacts_error": posted.contacts_error,
            "roles": role_options(target.definition, [c.role for c in contacts]),
        }

    def _key_dates(self, target: Target) -> list[dict[str, Any]]:
        dates = dict(target.campaign.dates)
        if target.enrolment.go_live is not None:
            dates["go_live"] = target.enrolment.go_live.isoformat()
        entries: list[dict[str, Any]] = []
        for key, label in self.texts.labels("date_labels").items():
            value = dates.get(key)
            if not value:
                continue
            if key in {"pilot_start", "silent_go_live"} and not target.enrolment.is_pilot:
                continue
            for day in value if isinstance(value, list) else [value]:
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
        self, target: Target, posted: Posted, context: Mapping[str, Any]
    ) -> list[dict[str, str]]:
        say = self.texts.say
        entries: list[dict[str, str]] = []
        by_key = {q.key: q for q in target.fields}
        for key, message in posted.errors.items():
            question = by_key.get(key)
            href = "#" + anchor_of(question) if question else "#fragebogen"
            label = question.label if question else key
            entries.append(
                {"href": href, "text": say("portal.summary_entry", label=label, message=message)}
            )
        for item in context["checklist"]:
            if item["error"]:
                text = say("portal.summary_entry", label=item["title"], message=item["error"])
                entries.append({"href": f"#c-{item['key']}-note", "text": text})
        if posted.contacts_error:
            text = say("portal.summary_contacts", message=posted.contacts_error)
            entries.append({"href": "#kontakte", "text": text})
        rows: Sequence[ContactRow] = context["contact_rows"]
        for n, row in enumerate(rows):
            for sub, message in row.errors.items():
                text = say("portal.summary_contact_row", number=n + 1, message=message)
                entries.append({"href": f"#k-{n}-{sub}", "text": text})
        return entries
