"""Rückmeldung erfassen: the coordinator enters a municipality's answers or checklist ticks.

The parameter is a pydantic model, so the Prefect UI renders it as a form ("Custom run"). The
flow calls the same functions as the portal and the CLI (efa_rollout.services.answers and .checklist), in one
transaction: either everything entered is stored, or nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field, field_validator

from efa_rollout.domain.stages import ResponseStatus
from efa_rollout.errors import UserError
from efa_rollout.output_safety import markdown_cell
from efa_rollout.services.clock import resolve_as_of
from efa_rollout.texts import say
from flows._prefect import flow_parameter, publish_markdown, run_name, tag_run_with_campaign

_ITEM_KEY = r"^[a-z][a-z0-9_]*$"


class RecordResponseInput(BaseModel):
    """What the coordinator enters for one municipality (a form in the Prefect UI)."""

    campaign: str = Field(
        ...,
        min_length=2,
        max_length=80,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        title="Kampagne",
        description="Name der Kampagne, z. B. ewa-ostalbkreis (efa campaign list)",
    )
    ags: str = Field(
        ...,
        min_length=7,
        max_length=8,
        pattern=r"^[0-9]{7,8}$",
        title="Gemeindeschlüssel (AGS)",
        description="8 Ziffern, z. B. 08136088 für Aalen",
    )
    answers: dict[str, Any] = Field(
        default_factory=dict,
        max_length=100,
        title="Antworten",
        description=(
            'Feldschlüssel → Wert, z. B. {"funktionspostfach": "meldeamt@aalen.de", '
            '"ewa_modul_bestellt": "ja", "projektleitung": {"name": "Anna Muster", '
            '"email": "anna.muster@aalen.de"}}. Nicht genannte Antworten bleiben, '
            "ein leerer Wert löscht eine Antwort."
        ),
    )
    submit: bool = Field(
        False,
        title="Als eingereicht speichern",
        description="Die Antworten gelten als abgegeben; Pflichtangaben werden geprüft",
    )
    checklist_done: list[str] = Field(
        default_factory=list,
        max_length=100,
        title="Erledigte Checklistenpunkte",
        description="Schlüssel der Punkte, die erledigt sind, z. B. schulung",
    )
    checklist_reopen: list[str] = Field(
        default_factory=list,
        max_length=100,
        title="Wieder geöffnete Checklistenpunkte",
        description="Schlüssel der Punkte, die doch nicht erledigt sind",
    )
    note: str | None = Field(
        None,
        max_length=2000,
        title="Notiz",
        description="Notiz zu den genannten Checklistenpunkten (z. B. »Schulung am 12.06.«)",
    )
    author: str = Field(
        ...,
        min_length=2,
        max_length=200,
        title="Erfasst von",
        description="Ihr Name, für das Protokoll",
    )
    received_at: datetime | None = Field(
        None,
        title="Eingegangen am",
        description=(
            "Wann die Rückmeldung einging, wenn früher als jetzt (z. B. ein Brief vom Freitag); "
            "leer: jetzt"
        ),
    )

    @field_validator("checklist_done", "checklist_reopen")
    @classmethod
    def _item_keys(cls, values: list[str]) -> list[str]:
        import re

        cleaned = [v.strip() for v in values if v.strip()]
        bad = [v for v in cleaned if not re.match(_ITEM_KEY, v)]
        if bad:
            raise ValueError(say("flow.record_response.bad_item_keys", keys=", ".join(bad)))
        return cleaned


def _name() -> str:
    params = flow_parameter("params")
    if isinstance(params, RecordResponseInput):
        campaign, ags = params.campaign, params.ags
    else:
        campaign, ags = (params or {}).get("campaign", "?"), (params or {}).get("ags", "?")
    return run_name(campaign, f"rueckmeldung-{ags}", None)


def record(params: RecordResponseInput, *, now: Any = None) -> dict[str, Any]:
    """Store the answers and checklist ticks of PARAMS in one transaction; returns what changed."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.answers import save_answers
    from efa_rollout.services.checklist import set_checklist_item
    from efa_rollout.services.late_entry import late_entry
    from efa_rollout.services.lookup import find_enrolment

    requested = resolve_as_of(params.received_at) if params.received_at else None
    now, late = late_entry(
        requested,
        now=now or resolve_as_of(None),
        label=say("flow.record_response.late_label", moment=params.received_at),
    )
    both = set(params.checklist_done) & set(params.checklist_reopen)
    if both:
        raise UserError(say("flow.record_response.done_and_reopened", keys=", ".join(sorted(both))))
    if (
        not params.answers
        and not params.submit
        and not (params.checklist_done or params.checklist_reopen)
    ):
        raise UserError(say("flow.record_response.nothing"))
    result: dict[str, Any] = {"campaign": params.campaign, "ags": params.ags}
    with session_scope() as session:
        enrolment = find_enrolment(session, params.campaign, params.ags)
        result["ags"] = enrolment.ags
        if params.answers or params.submit:
            response = save_answers(
                session,
                enrolment=enrolment,
                answers=params.answers,
                submit=params.submit,
                source="prefect",
                author=params.author,
                now=now,
                late=late,
            )
            result["version"] = response.version
            result["status"] = response.status
            result["complete"] = response.complete
        for keys, done in ((params.checklist_done, True), (params.checklist_reopen, False)):
            for key in keys:
                set_checklist_item(
                    session,
                    enrolment=enrolment,
                    item_key=key,
                    done=done,
                    note=params.note,
                    source="prefect",
                    author=params.author,
                    now=now,
                    late=late,
                )
        result["checklist_done"] = list(params.checklist_done)
        result["checklist_reopened"] = list(params.checklist_reopen)
        result["answers_complete"] = enrolment.answers_complete
        result["required_open"] = enrolment.required_open
    return result


def _markdown(params: RecordResponseInput, result: dict[str, Any]) -> str:
    lines = [say("flow.record_response.title", campaign=params.campaign, ags=result["ags"]), ""]
    if "version" in result:
        submitted = result["status"] == ResponseStatus.SUBMITTED
        status = say(
            "flow.record_response.submitted" if submitted else "flow.record_response.draft"
        )
        complete = say(
            "flow.record_response.yes" if result["complete"] else "flow.record_response.no"
        )
        lines.append(
            say(
                "flow.record_response.saved",
                version=result["version"],
                status=status,
                complete=complete,
            )
        )
    if result["checklist_done"]:
        done = markdown_cell(", ".join(result["checklist_done"]))
        lines.append(say("flow.record_response.done", keys=done))
    if result["checklist_reopened"]:
        reopened = markdown_cell(", ".join(result["checklist_reopened"]))
        lines.append(say("flow.record_response.reopened", keys=reopened))
    lines.append(say("flow.record_response.open", count=result["required_open"]))
    lines.append(say("flow.record_response.author", author=markdown_cell(params.author)))
    return "\n".join(lines)


def _logger() -> Any:
    """The run logger inside a flow run, a plain logger outside (e.g. `record_response.fn`)."""
    import logging

    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


@flow(name="Rückmeldung erfassen", flow_run_name=_name, log_prints=True)
def record_response(params: RecordResponseInput) -> dict[str, Any]:
    """Antworten und Checklistenpunkte einer Gemeinde eintragen (ganz oder gar nicht)."""
    tag_run_with_campaign(params.campaign)
    logger = _logger()
    try:
        result = record(params)
    except UserError as error:
        logger.error(error.render())
        raise
    publish_markdown(
        f"{params.campaign}-rueckmeldung-{result['ags']}",
        _markdown(params, result),
        say("flow.record_response.summary"),
    )
    logger.info(say("flow.record_response.log", ags=result["ags"], result=dict(result)))
    return result
