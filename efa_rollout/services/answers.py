"""Questionnaire answers: validation, versions, saving and formatting.

Every write of answers keeps the enrolment's ``answers_complete`` right in the caller's
transaction (flush, never commit); the channel's ``source`` and ``author`` end up in the event log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from efa_rollout.definitions import CampaignDefinition, QuestionField
from efa_rollout.domain.audit import EventKind
from efa_rollout.domain.stages import ResponseStatus
from efa_rollout.domain.text import german_date
from efa_rollout.errors import UserError
from efa_rollout.services.contacts import (
    contacts_from_answers,
    format_contact,
    parse_contact,
    parse_contacts,
)
from efa_rollout.services.fields import (
    MAX_TEXT,
    MAX_TEXTAREA,
    InvalidValue,
    choice_parser,
    is_empty,
    parse_date_value,
    parse_email,
    parse_number,
    parse_phone,
    parse_yesno,
    text_parser,
)
from efa_rollout.services.late_entry import LateEntry, check_answers_moment
from efa_rollout.services.lookup import campaign_definition, get_campaign
from efa_rollout.texts import say
from models import (
    Campaign,
    Enrolment,
    Event,
    Municipality,
    QuestionnaireResponse,
)

#: Where an entry came from; recorded on the response, the checklist row and the event.
SOURCES = ("portal", "cli", "import", "prefect", "simulation")


class AnswersInvalid(UserError):
    """Answers refused as a whole: ``errors`` maps each field key to a German reason."""

    def __init__(self, errors: Mapping[str, str], *, labels: Mapping[str, str] | None = None):
        self.errors = dict(errors)
        labels = labels or {}
        count = len(self.errors)
        super().__init__(
            say("service.answers.invalid", count=count),
            details=[
                say("service.answers.invalid_field", label=labels.get(k, k), key=k, message=msg)
                for k, msg in self.errors.items()
            ],
        )


@dataclass
class ValidationResult:
    """Cleaned answers (typed, empty ones left out), errors per field key, and completeness."""

    clean: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    complete: bool = False

    @property
    def ok(self) -> bool:
        """True when there are no errors."""
        return not self.errors


def _parser(question: QuestionField) -> Callable[[Any], Any]:
    parsers: dict[str, Callable[[Any], Any]] = {
        "text": text_parser(MAX_TEXT),
        "textarea": text_parser(MAX_TEXTAREA),
        "email": parse_email,
        "phone": parse_phone,
        "date": parse_date_value,
        "yesno": parse_yesno,
        "number": parse_number,
        "contact": parse_contact,
        "contacts": parse_contacts,
    }
    if question.type == "choice":
        return choice_parser(question)
    return parsers[question.type]


def validate_answers(
    definition: CampaignDefinition,
    *,
    role: str | None,
    is_pilot: bool,
    answers: Mapping[str, Any],
    submit: bool,
) -> ValidationResult:
    """Check and type ANSWERS against the fields that apply to ROLE (and pilots).

    Empty values (None, "", [], {}) count as not answered and are left out of ``clean``.
    Unknown keys and fields that do not apply are errors. Required fields are enforced only
    when SUBMIT; ``complete`` says whether every applicable required field is answered and
    there are no errors.
    """
    applicable = {q.key: q for q in definition.fields_for(role, is_pilot)}
    all_keys = {q.key for q in definition.questionnaire}
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in answers.items():
        question = applicable.get(key)
        if question is None:
            if key in all_keys and is_empty(value):
                continue
            if key in all_keys:
                errors[key] = say("service.answers.not_applicable")
            else:
                valid = ", ".join(applicable) or say("service.answers.no_fields")
                errors[key] = say("service.answers.unknown_field", key=key, valid=valid)
            continue
        if is_empty(value):
            continue
        try:
            parsed = _parser(question)(value)
        except InvalidValue as error:
            errors[key] = str(error)
            continue
        if is_empty(parsed):
            continue
        clean[key] = parsed
    missing = [q.key for q in applicable.values() if q.required and q.key not in clean]
    if submit:
        for key in missing:
            errors.setdefault(key, say("service.answers.required"))
    ordered = {key: clean[key] for key in applicable if key in clean}
    return ValidationResult(clean=ordered, errors=errors, complete=not missing and not errors)


def latest_response(
    session: Session, enrolment_id: int, *, submitted_only: bool = False
) -> QuestionnaireResponse | None:
    """The newest answers version of an enrolment (only submitted ones if SUBMITTED_ONLY)."""
    query = select(QuestionnaireResponse).where(QuestionnaireResponse.enrolment_id == enrolment_id)
    if submitted_only:
        query = query.where(QuestionnaireResponse.status == ResponseStatus.SUBMITTED)
    query = query.order_by(col(QuestionnaireResponse.version).desc())
    return session.exec(query.limit(1)).first()


def format_answer(question: QuestionField, value: Any) -> str:
    """An answer as German text for the summary and the portal (dates DD.MM.YYYY)."""
    if is_empty(value):
        return ""
    if question.type == "yesno":
        return "ja" if value else "nein"
    if question.type == "date":
        try:
            return german_date(date.fromisoformat(str(value)))
        except ValueError:
            return str(value)
    if question.type == "choice":
        labels = {c.value: c.label for c in question.choices}
        return labels.get(str(value), str(value))
    if question.type == "number":
        return str(value).replace(".", ",")
    if question.type == "contact":
        return format_contact(value)
    if question.type == "contacts":
        return "; ".join(format_contact(c) for c in value)
    return str(value)


def check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")


def touch_enrolment(enrolment: Enrolment, now: datetime, expected_version: int | None) -> None:
    if expected_version is not None and enrolment.version != expected_version:
        raise UserError(say("service.answers.changed_meanwhile"))
    enrolment.version += 1
    enrolment.updated_at = now


def save_answers(
    session: Session,
    *,
    enrolment: Enrolment,
    answers: Mapping[str, Any],
    submit: bool,
    source: str,
    author: str,
    now: datetime,
    merge: bool = True,
    expected_version: int | None = None,
    reason: str | None = None,
    late: LateEntry | None = None,
) -> QuestionnaireResponse:
    """Store a new version of the answers of ENROLMENT (flushes, does not commit).

    With MERGE the given answers are laid over the latest version's (an empty value clears a
    field), so a coordinator can enter single fields. Raises AnswersInvalid (nothing written)
    when a value is invalid, or — with SUBMIT — a required field is missing. Keeps
    ``enrolment.answers_complete`` equal to the completeness of the latest submitted version.
    EXPECTED_VERSION (optional) refuses the write when the enrolment changed meanwhile;
    REASON (optional) is kept in the event log, e.g. the file and line of an import.
    LATE (optional): NOW is when the answers came, earlier than their entry; checked first.
    """
    check_source(source)
    assert enrolment.id is not None
    if late is not None:
        check_answers_moment(session, enrolment, now, late)
    campaign = get_campaign(session, enrolment.campaign_id)
    definition = campaign_definition(campaign)
    latest = latest_response(session, enrolment.id)
    combined: dict[str, Any] = dict(latest.answers) if merge and latest is not None else {}
    for key, value in answers.items():
        combined[key] = value  # an empty value clears the field (and unknown keys are reported)
    result = validate_answers(
        definition,
        role=enrolment.role,
        is_pilot=enrolment.is_pilot,
        answers=combined,
        submit=submit,
    )
    if result.errors:
        labels = {q.key: q.label for q in definition.questionnaire}
        raise AnswersInvalid(result.errors, labels=labels)
    touch_enrolment(enrolment, late.recorded_at if late else now, expected_version)
    version = (
        session.exec(
            select(func.max(QuestionnaireResponse.version)).where(
                QuestionnaireResponse.enrolment_id == enrolment.id
            )
        ).one()
        or 0
    ) + 1
    response = QuestionnaireResponse(
        enrolment_id=enrolment.id,
        version=version,
        status=ResponseStatus.SUBMITTED if submit else ResponseStatus.DRAFT,
        answers=result.clean,
        complete=result.complete,
        source=source,
        author=author,
        created_at=now,
    )
    session.add(response)
    if submit:
        enrolment.answers_complete = result.complete
    else:
        submitted = latest_response(session, enrolment.id, submitted_only=True)
        enrolment.answers_complete = bool(submitted and submitted.complete)
    session.add(enrolment)
    session.add(
        Event(
            at=now,
            campaign_id=enrolment.campaign_id,
            ags=enrolment.ags,
            enrolment_id=enrolment.id,
            actor=author,
            kind=EventKind.ANSWERS_SUBMITTED if submit else "answers_saved",
            reason=reason,
            data={
                "version": version,
                "source": source,
                "complete": result.complete,
                "fields": sorted(answers),
                **(late.event_data(now) if late else {}),
            },
        )
    )
    if submit:  # named contact persons reach the directory (and so the next mail)
        contacts_from_answers(
            session,
            fields=definition.fields_for(enrolment.role, enrolment.is_pilot),
            answers=result.clean,
            ags=enrolment.ags,
            campaign_id=enrolment.campaign_id,
            enrolment_id=enrolment.id,
            actor=author,
            now=now,
        )
    session.flush()
    return response


def response_versions(session: Session, enrolment_id: int) -> list[QuestionnaireResponse]:
    """Every answers version of an enrolment, newest first."""
    query = (
        select(QuestionnaireResponse)
        .where(QuestionnaireResponse.enrolment_id == enrolment_id)
        .order_by(col(QuestionnaireResponse.version).desc())
    )
    return list(session.exec(query).all())


def queue_confirmation(
    session: Session,
    *,
    campaign: Campaign,
    enrolment: Enrolment,
    municipality: Municipality,
    definition: CampaignDefinition,
    response: QuestionnaireResponse,
    now: datetime,
) -> None:
    """Queue the confirmation mail of a submitted RESPONSE, listing what was received."""
    from efa_rollout.services.outbox import queue_campaign_mail  # deferred: loads the mail builder

    fields = {q.key: q for q in definition.questionnaire}
    received = [
        {"label": fields[key].label, "value": format_answer(fields[key], value)}
        for key, value in response.answers.items()
        if key in fields
    ]
    queue_campaign_mail(
        session,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
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
