"""Who waits for what: the waiting rule over a campaign's enrolments, for status and reports.

`campaign_waits` gives one row per municipality that cannot move now, with "wartet auf: …";
`campaign_flag` (from the domain) says whether someone has to act. The reports engineer can
use `campaign_waits` and `waits_table` as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from efa_rollout.definitions import CampaignDefinition
from efa_rollout.domain.rules import Facts
from efa_rollout.domain.stages import EnrolmentStatus, Stage
from efa_rollout.domain.waiting import ACTOR_LABELS, Waiting, campaign_flag, waiting_for
from efa_rollout.services.lookup import campaign_definition, get_campaign, timeline_of
from efa_rollout.texts import say
from models import Enrolment, Municipality, OutboxMessage, QuestionnaireResponse


@dataclass(frozen=True)
class WaitRow:
    """One municipality that cannot move now, and what it waits for."""

    ags: str
    name: str
    stage: Stage
    waiting: Waiting

    def as_row(self) -> dict[str, str]:
        """German columns for tables and artifacts."""
        return {
            "AGS": self.ags,
            "Gemeinde": self.name,
            "Stufe": self.stage.label,
            "wartet auf": self.waiting.what,
            "wer ist am Zug": ACTOR_LABELS[self.waiting.actor],
            "ohne Zutun blockiert": "ja" if self.waiting.needs_action else "nein",
        }


def _questions_open(
    definition: CampaignDefinition, enrolment: Enrolment, answers: dict[str, Any]
) -> int:
    """Required fields of ENROLMENT's questionnaire without an answer in ANSWERS."""
    fields = definition.fields_for(enrolment.role, enrolment.is_pilot)
    return sum(1 for f in fields if f.required and answers.get(f.key) in (None, "", [], {}))


def _latest_answers(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    rows = session.exec(
        select(QuestionnaireResponse)
        .where(col(QuestionnaireResponse.enrolment_id).in_(ids))
        .order_by(col(QuestionnaireResponse.version))
    ).all()
    return {r.enrolment_id: r.answers for r in rows}  # the highest version wins


def _with_summary(session: Session, campaign_id: str) -> set[str]:
    query = select(OutboxMessage.ags).where(
        OutboxMessage.campaign_id == campaign_id,
        OutboxMessage.kind == "summary",
        col(OutboxMessage.status) != "cancelled",
    )
    return {a for a in session.exec(query) if a}


def campaign_waits(session: Session, campaign_id: str, *, today: date) -> list[WaitRow]:
    """The municipalities of CAMPAIGN that cannot move on TODAY, by AGS."""
    from efa_rollout.services.summary_release import summary_facts

    campaign = get_campaign(session, campaign_id)
    definition = campaign_definition(campaign)
    timeline = timeline_of(campaign)
    summary = summary_facts(session, campaign)
    pairs = session.exec(
        select(Enrolment, Municipality)
        .join(Municipality, col(Municipality.ags) == col(Enrolment.ags))
        .where(
            Enrolment.campaign_id == campaign_id,
            Enrolment.status != EnrolmentStatus.NOT_APPLICABLE.value,
        )
        .order_by(col(Enrolment.ags))
    ).all()
    collecting = [
        e.id for e, _ in pairs if e.stage == Stage.INFORMATION_COLLECTION and e.id is not None
    ]
    answers = _latest_answers(session, collecting)
    with_summary = _with_summary(session, campaign_id)
    rows = []
    for enrolment, municipality in pairs:
        facts = Facts(
            stage=Stage(enrolment.stage),
            status=EnrolmentStatus(enrolment.status),
            is_pilot=enrolment.is_pilot,
            answers_complete=enrolment.answers_complete,
            required_open=enrolment.required_open,
            summary_received=enrolment.ags in with_summary,
            own_go_live=enrolment.go_live,
        )
        open_questions = (
            _questions_open(definition, enrolment, answers.get(enrolment.id or 0, {}))
            if enrolment.stage == Stage.INFORMATION_COLLECTION
            else 0
        )
        waiting = waiting_for(
            facts, timeline, today, summary=summary, questions_open=open_questions
        )
        if waiting is not None:
            rows.append(WaitRow(enrolment.ags, municipality.name, facts.stage, waiting))
    return rows


def flag_of(rows: list[WaitRow]) -> str | None:
    """The campaign's flag when someone has to act, else None."""
    return campaign_flag([r.waiting for r in rows])


def waits_table(rows: list[WaitRow]) -> list[dict[str, str]]:
    """Rows for a table (Prefect artifact, report)."""
    return [r.as_row() for r in rows]


def waits_markdown(campaign_id: str, rows: list[WaitRow], today: date) -> str:
    """A Markdown summary: the flag, then what the stuck municipalities wait for."""
    flag = flag_of(rows)
    lines = [say("service.waiting.title", campaign=campaign_id, day=f"{today:%d.%m.%Y}"), ""]
    lines.append(f"**{flag}**" if flag else say("service.waiting.all_moving"))
    stuck = [r for r in rows if r.waiting.needs_action]
    if stuck:
        lines += ["", say("service.waiting.header"), "|---|---|---|---|"]
        lines += [
            say(
                "service.waiting.row",
                name=r.name,
                ags=r.ags,
                stage=r.stage.label,
                what=r.waiting.what,
                actor=ACTOR_LABELS[r.waiting.actor],
            )
            for r in stuck[:200]
        ]
    return "\n".join(lines)
