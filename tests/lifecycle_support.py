"""A campaign from start to mandatory-from over a simulated timeline, and what it mailed.

`Lifecycle` drives the days in the order of the deployment schedules (go-live 06:30, tick 07:05,
summary 07:15, reminders 08:00), then lets the simulated municipalities act at 10:00: the
diligent ones answer within a few weeks of the request and tick each item on its due date (after
that day's reminder), the laggards answer but never tick. Items the Landratsamt or Komm.ONE owns
are ticked on their due date for everybody. Two backends run the steps: the services the flows
call, or the `efa` CLI alone (`--no-prefect`).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlmodel import Session, col, select

from efa_rollout.db import get_engine, session_scope
from efa_rollout.demo import simulation
from efa_rollout.domain.reminder_plan import MUNICIPALITY_OWNER
from efa_rollout.domain.workdays import WorkCalendar, iter_working_days
from efa_rollout.services import campaigns, lookup, orchestration
from efa_rollout.services.answers import save_answers
from efa_rollout.services.checklist import checklist_view, set_checklist_item
from models import Enrolment, Event, Municipality, OutboxMessage

CAL = WorkCalendar()
SIM = "Simulation (Test)"


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """Local wall-clock time on DAY as aware UTC."""
    return CAL.local_moment(day, time(hour, minute))


@dataclass
class Municipalities:
    """Who does their part in a campaign, and when they answer."""

    diligent: list[str]
    laggards: list[str]
    answer_day: dict[str, date] = field(default_factory=dict)


def split(campaign_id: str, laggards: int, start: date) -> Municipalities:
    """The campaign's municipalities: the last LAGGARDS by AGS never tick; answer days spread."""
    with session_scope() as session:
        ags = sorted(
            session.exec(select(Enrolment.ags).where(Enrolment.campaign_id == campaign_id))
        )
    days = list(iter_working_days(CAL, start + timedelta(days=1), start + timedelta(days=40)))
    answer_day = {a: days[(int(a[-3:]) * 7) % len(days)] for a in ags}
    return Municipalities(ags[: len(ags) - laggards], ags[len(ags) - laggards :], answer_day)


class Steps:
    """The scheduled steps through the services the flows call."""

    def start(self, campaign_id: str, now: datetime) -> None:
        orchestration.start_campaign(campaign_id, now)

    def advance(self, campaign_id: str, now: datetime, *, go_live: bool) -> None:
        orchestration.advance_campaigns(campaign_id, now, go_live=go_live)

    def summary(self, campaign_id: str, now: datetime) -> str:
        from efa_rollout.services.summary_release import release_summary

        return release_summary(get_engine(), campaign_id, now=now, actor=SIM).outcome

    def approve(self, campaign_id: str, now: datetime) -> None:
        from efa_rollout.services.summary_release import decide, release_summary

        with session_scope() as session:
            decide(session, campaign_id, approve=True, note=None, actor=SIM, now=now)
        release_summary(get_engine(), campaign_id, now=now, actor=SIM)

    def remind(self, campaign_id: str, now: datetime) -> None:
        orchestration.remind(campaign_id=campaign_id, as_of=now)

    def answer(self, campaign_id: str, ags: str, answers: dict, now: datetime) -> None:
        with session_scope() as session:
            enrolment = session.exec(
                select(Enrolment).where(Enrolment.campaign_id == campaign_id, Enrolment.ags == ags)
            ).one()
            save_answers(
                session,
                enrolment=enrolment,
                answers=answers,
                submit=True,
                source="simulation",
                author=SIM,
                now=now,
            )

    def tick_item(self, campaign_id: str, ags: str, key: str, now: datetime) -> None:
        with session_scope() as session:
            enrolment = session.exec(
                select(Enrolment).where(Enrolment.campaign_id == campaign_id, Enrolment.ags == ags)
            ).one()
            set_checklist_item(
                session,
                enrolment=enrolment,
                item_key=key,
                done=True,
                note="simuliert",
                source="simulation",
                author=SIM,
                now=now,
            )


class CliSteps(Steps):
    """The same steps through the `efa` CLI alone (`--no-prefect`)."""

    def __init__(self) -> None:
        from typer.testing import CliRunner

        from efa_rollout.cli import app

        self.runner, self.app = CliRunner(), app
        self.output: list[str] = []

    def efa(self, *args: str) -> str:
        result = self.runner.invoke(self.app, list(args))
        assert result.exit_code == 0, f"efa {' '.join(args)}: {result.output}"
        self.output.append(result.output)
        return result.output

    def start(self, campaign_id: str, now: datetime) -> None:
        self.efa("campaign", "start", campaign_id, "--as-of", now.isoformat(), "--no-prefect")

    def advance(self, campaign_id: str, now: datetime, *, go_live: bool) -> None:
        command = "go-live" if go_live else "tick"
        self.efa("campaign", command, campaign_id, "--as-of", now.isoformat(), "--no-prefect")

    def summary(self, campaign_id: str, now: datetime) -> str:
        out = self.efa("summary", "send", campaign_id, "--when-due", "--as-of", now.isoformat())
        return "awaiting_approval" if "wartet auf die Freigabe" in out else "other"

    def approve(self, campaign_id: str, now: datetime) -> None:
        self.efa("summary", "approve", campaign_id, "--as-of", now.isoformat())

    def remind(self, campaign_id: str, now: datetime) -> None:
        self.efa("remind", "--campaign", campaign_id, "--as-of", now.isoformat())

    def answer(self, campaign_id: str, ags: str, answers: dict, now: datetime) -> None:
        pairs = [
            f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
            for k, v in answers.items()
        ]
        self.efa(
            "response", "set", campaign_id, ags, *pairs, "--submit", "--as-of", now.isoformat()
        )

    def tick_item(self, campaign_id: str, ags: str, key: str, now: datetime) -> None:
        self.efa("checklist", "done", campaign_id, ags, key, "--as-of", now.isoformat())


@dataclass
class Campaign:
    """One campaign in the simulation."""

    id: str
    start: date
    laggards: int = 2
    who: Municipalities = field(default_factory=lambda: Municipalities([], []))


class Lifecycle:
    """Drives CAMPAIGNS through every working day from the first start to END."""

    def __init__(self, steps: Steps, campaigns: list[Campaign], end: date) -> None:
        self.steps, self.campaigns, self.end = steps, campaigns, end
        self.awaiting: dict[str, list[date]] = defaultdict(list)
        self.on_day: list[Callable[[date], None]] = []

    def run(self) -> None:
        first = min(c.start for c in self.campaigns)
        for day in iter_working_days(CAL, first, self.end):
            for campaign in self.campaigns:
                if day == campaign.start:
                    self.steps.start(campaign.id, at(day, 9))
                    campaign.who = split(campaign.id, campaign.laggards, day)
                    continue
                if day > campaign.start:
                    self.scheduled(campaign, day)
            for hook in self.on_day:
                hook(day)

    def scheduled(self, campaign: Campaign, day: date) -> None:
        self.steps.advance(campaign.id, at(day, 6, 30), go_live=True)
        self.steps.advance(campaign.id, at(day, 7, 5), go_live=False)
        outcome = self.steps.summary(campaign.id, at(day, 7, 15))
        if outcome == "awaiting_approval":
            self.awaiting[campaign.id].append(day)
            if len(self.awaiting[campaign.id]) == 2:  # the coordinator approves the next day
                self.steps.approve(campaign.id, at(day, 7, 30))
        self.steps.remind(campaign.id, at(day, 8))
        self.municipalities_act(campaign, day)

    def municipalities_act(self, campaign: Campaign, day: date) -> None:
        template = lookup.campaign_definition(_campaign(campaign.id)).key
        answers_for = simulation.SAMPLE_ANSWERS[template]
        now = at(day, 10)
        for ags, answer_day in campaign.who.answer_day.items():
            if answer_day == day:
                domain = campaigns.slugify(_name(ags)) + ".example"
                self.steps.answer(campaign.id, ags, simulation._fill(answers_for, domain), now)
        for ags, key in self.due_items(campaign, day):
            self.steps.tick_item(campaign.id, ags, key, now)

    def due_items(self, campaign: Campaign, day: date) -> list[tuple[str, str]]:
        """(AGS, item) to tick today: own items of the diligent, others' items for everyone."""
        diligent = set(campaign.who.diligent)
        with Session(get_engine()) as session:
            definition = lookup.campaign_definition(_campaign(campaign.id))
            enrolments = session.exec(
                select(Enrolment).where(
                    Enrolment.campaign_id == campaign.id,
                    col(Enrolment.stage).not_in(["information_collection", "summary_distribution"]),
                )
            ).all()
            todo = []
            for enrolment in enrolments:
                for item in checklist_view(session, enrolment, definition, today=day):
                    if item["done"] or item["due"] > day:
                        continue
                    if item["owner"] != MUNICIPALITY_OWNER or enrolment.ags in diligent:
                        todo.append((enrolment.ags, item["key"]))
        return todo


def _campaign(campaign_id: str):  # type: ignore[no-untyped-def]
    with Session(get_engine()) as session:
        return lookup.get_campaign(session, campaign_id)


def _name(ags: str) -> str:
    with Session(get_engine()) as session:
        municipality = session.get(Municipality, ags)
        assert municipality is not None
        return municipality.name


# --- what came out ----------------------------------------------------------------------------


def mails(campaign_id: str | None = None) -> list[OutboxMessage]:
    with Session(get_engine()) as session:
        query = select(OutboxMessage).where(col(OutboxMessage.is_test).is_(False))
        if campaign_id:
            query = query.where(OutboxMessage.campaign_id == campaign_id)
        return list(session.exec(query))


def mail_day(message: OutboxMessage) -> date:
    return CAL.local_date(message.queued_at)


def max_per_day(messages: list[OutboxMessage], *, per_campaign: bool = True) -> int:
    counts = Counter(
        ((m.campaign_id if per_campaign else ""), m.ags, mail_day(m)) for m in messages
    )
    return max(counts.values(), default=0)


def asked_for(messages: list[OutboxMessage], ags: str) -> dict[date, list[date]]:
    """Deadline -> days a reminder or escalation to AGS asked for it."""
    asked: dict[date, list[date]] = defaultdict(list)
    for m in messages:
        if m.ags == ags and m.kind in ("reminder", "escalation"):
            for _key, due in (m.meta or {}).get("reminder_items", []):
                day = mail_day(m)
                due_day = date.fromisoformat(due)
                if day not in asked[due_day]:
                    asked[due_day].append(day)
    return asked


def went_live(campaign_id: str) -> set[str]:
    with Session(get_engine()) as session:
        events = session.exec(
            select(Event.ags).where(
                Event.campaign_id == campaign_id,
                Event.kind == "stage_changed",
                Event.to_stage == "go_live",
            )
        )
        return {a for a in events if a}


def figures(campaign_id: str) -> dict[str, object]:
    """Mails per municipality (by kind), the most in one day: the figures of the report."""
    messages = mails(campaign_id)
    per_ags = Counter(m.ags for m in messages)
    kinds = Counter(m.kind for m in messages)
    return {
        "mails": len(messages),
        "per_municipality_min": min(per_ags.values()),
        "per_municipality_median": statistics.median(per_ags.values()),
        "per_municipality_max": max(per_ags.values()),
        "kinds": dict(sorted(kinds.items())),
        "max_per_day": max_per_day(messages),
    }


def utc(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)
