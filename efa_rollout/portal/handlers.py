"""The three forms of a portal page: parse what was posted, call the services, render or redirect.

Each handler runs inside the request's transaction with an already checked TARGET (token, CSRF,
origin, not read-only); it answers 303 after a write, or the page again with the input kept.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from efa_rollout.portal.forms import (
    MAX_ROWS,
    ContactRow,
    answers_from_values,
    contact_rows_from_form,
    row_count,
    values_from_form,
)
from efa_rollout.portal.view import PageView, Posted, Target
from efa_rollout.services.answers import (
    AnswersInvalid,
    latest_response,
    queue_confirmation,
    save_answers,
)
from efa_rollout.services.checklist import (
    by_municipality,
    checklist_view,
    note_problems,
    update_checklist,
)
from efa_rollout.services.contacts import (
    apply_contact_changes,
    changes_of,
    check_contact_list,
    contacts_of,
    role_options,
)

__all__ = ["save_answers_form", "save_checklist_form", "save_contacts_form"]


def _int(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdigit() and len(value) < 10:
        return int(value)
    return None


def _field_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _see_other(token: str, ok: str, anchor: str) -> Response:
    return RedirectResponse(f"/p/{token}?ok={ok}#{anchor}", status_code=303)


# -- questionnaire ------------------------------------------------------------------------------


def save_answers_form(
    view: PageView, session: Session, target: Target, token: str, form: FormData
) -> Response:
    """Another row, a draft or a submission of the questionnaire."""
    fields = target.fields
    values = values_from_form(fields, form)
    rows = {q.key: row_count(form, q.key) for q in fields if q.type == "contacts"}
    basis = _int(form.get("basis"))
    action = str(form.get("aktion") or "entwurf")
    if action.startswith("zeile:"):
        key = action.removeprefix("zeile:")
        if key in rows:
            rows[key] = min(rows[key] + 1, MAX_ROWS)
        notice = ("info", view.texts.say("portal.row_added_answers"))
        posted = Posted(values=values, rows=rows, notice=notice, basis=basis)
        return view.render(session, target, token, posted, anchor_key=key)
    if action not in {"entwurf", "absenden"}:
        return view.error_response(400)
    latest = latest_response(session, target.enrolment_id)
    current = latest.version if latest else 0
    if latest is not None and basis is not None and basis != current:
        text = view.texts.say(
            "portal.newer_version",
            version=latest.version,
            who=view.source_label(latest.source),
            moment=view.fmt_moment(latest.created_at),
        )
        posted = Posted(values=values, rows=rows, notice=("warning", text), basis=current)
        return view.render(session, target, token, posted, status=409)
    posted = Posted(values=values, rows=rows, basis=current)
    return _store_answers(view, session, target, token, posted, submit=action == "absenden")


def _store_answers(
    view: PageView,
    session: Session,
    target: Target,
    token: str,
    posted: Posted,
    *,
    submit: bool,
) -> Response:
    now = view.clock()
    try:
        response = save_answers(
            session,
            enrolment=target.enrolment,
            answers=answers_from_values(target.fields, posted.values or {}),
            submit=submit,
            source="portal",
            author=view.author(target),
            now=now,
        )
    except AnswersInvalid as error:  # nothing was written
        posted.errors = error.errors
        return view.render(session, target, token, posted, status=422)
    if submit:
        queue_confirmation(
            session,
            campaign=target.campaign,
            enrolment=target.enrolment,
            municipality=target.municipality,
            definition=target.definition,
            response=response,
            now=now,
        )
    return _see_other(token, "abgesendet" if submit else "entwurf", "stand")


# -- checklist ----------------------------------------------------------------------------------


def save_checklist_form(
    view: PageView, session: Session, target: Target, token: str, form: FormData
) -> Response:
    """Ticks and notes of the items the municipality owns."""
    items = checklist_view(session, target.enrolment, target.definition, today=view.today())
    ticked = set(form.getlist("erledigt"))
    ticks = {
        item["key"]: (item["key"] in ticked, _field_text(form, f"notiz.{item['key']}"))
        for item in items
        if by_municipality(item)
    }
    problems = note_problems(ticks)
    if problems:
        errors = {key: view.texts.problem(p) for key, p in problems.items()}
        posted = Posted(checklist=ticks, checklist_errors=errors)
        return view.render(session, target, token, posted, status=422)
    changed = update_checklist(
        session,
        enrolment=target.enrolment,
        view=items,
        ticks=ticks,
        source="portal",
        author=view.author(target),
        now=view.clock(),
    )
    return _see_other(token, "checkliste" if changed else "unveraendert", "checkliste")


# -- contacts -----------------------------------------------------------------------------------


def save_contacts_form(
    view: PageView, session: Session, target: Target, token: str, form: FormData
) -> Response:
    """Another row, or the changed list of the municipality's contacts."""
    existing = {c.id: c for c in contacts_of(session, target.municipality.ags)}
    rows = contact_rows_from_form(form)
    if str(form.get("aktion") or "") == "zeile":
        rows.append(ContactRow())
        posted = Posted(contacts=rows, notice=("info", view.texts.say("portal.row_added_contacts")))
        return view.render(session, target, token, posted, anchor_key="k")
    roles = role_options(target.definition, [c.role for c in existing.values()])
    check = check_contact_list(rows, existing.keys(), roles)
    for n, email in check.emails.items():
        rows[n].email = email
    if not check.ok:
        for n, problems in check.problems.items():
            rows[n].errors = {sub: view.texts.problem(p) for sub, p in problems.items()}
        overall = view.texts.problem(check.overall) if check.overall else None
        posted = Posted(contacts=rows, contacts_error=overall)
        return view.render(session, target, token, posted, status=422)
    changed = apply_contact_changes(
        session,
        existing,
        changes_of(rows),
        ags=target.municipality.ags,
        campaign_id=target.campaign.id,
        enrolment_id=target.enrolment.id,
        actor=view.author(target),
        now=view.clock(),
    )
    return _see_other(token, "kontakte" if changed else "unveraendert", "kontakte")
