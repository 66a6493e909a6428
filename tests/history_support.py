"""The demo's timeline (April 2023 – January 2025) run as plain function calls, without Prefect."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from sqlmodel import select

from efa_rollout.db import get_engine, session_scope
from efa_rollout.demo import scenario, simulation
from efa_rollout.services import campaigns
from models import Enrolment

#: Per step day: AGS → (stage, status) as stored right after that day's work.
Truth = dict[date, dict[str, dict[str, tuple[str, str]]]]


def run_timeline(
    data_dir: object,
    *,
    after_step: Callable[[date], None] | None = None,
    deliver_mail: bool = True,
) -> Truth:
    """Directory, contacts, both campaigns, then every step of scenario.TIMELINE; the stored truth."""
    from efa_rollout.services.orchestration import advance_campaigns, start_campaign
    from efa_rollout.services.summary import distribute_summary
    from tests.engine_fixtures import ostalbkreis_with_campaigns

    ostalbkreis_with_campaigns(data_dir)  # type: ignore[arg-type]
    truth: Truth = {}
    for step in scenario.TIMELINE:
        now = scenario.moment(step.day)
        for action in step.actions:
            kind, _, rest = action.partition(":")
            if kind == "start":
                start_campaign(rest, now)
            elif kind == "answer":
                campaign_id, _, share = rest.rpartition(":")
                simulation.simulate_answers(campaign_id, float(share), now)
            elif kind == "tick_items":
                campaign_id, _, share = rest.rpartition(":")
                simulation.simulate_ticks(campaign_id, float(share), now)
            elif kind == "summary":
                with session_scope() as session:
                    campaigns.close_collection(session, rest, now=now, actor=scenario.SIMULATION)
                advance_campaigns(rest, now, go_live=False)
                distribute_summary(get_engine(), rest, now=now, actor=scenario.SIMULATION)
        advance_campaigns(None, now, go_live=True)
        if deliver_mail:
            from efa_rollout.mail.delivery import deliver

            deliver(now=now)  # into .eml files: every attempt is logged like an SMTP one
        truth[step.day] = stored_stages()
        if after_step:
            after_step(step.day)
    return truth


def stored_stages() -> dict[str, dict[str, tuple[str, str]]]:
    """Campaign → AGS → (stage, status) as stored now."""
    result: dict[str, dict[str, tuple[str, str]]] = {}
    with session_scope() as session:
        for e in session.exec(select(Enrolment)).all():
            result.setdefault(e.campaign_id, {})[e.ags] = (e.stage, e.status)
    return result


def moment(day: date) -> datetime:
    """The moment the demo acts on DAY (09:00 local)."""
    return scenario.moment(day)
