"""Acceptance: eWA and ViBa BW in the Ostalbkreis from start to mandatory-from, day by day.

Through the services the deployments run, and once through the `efa` CLI alone: every
municipality that does its part goes live, none stalls, every open deadline gets its reminders
up to go-live, and no municipality gets more than one mail a day from a campaign.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session

from efa_rollout.db import get_engine
from efa_rollout.demo import scenario
from efa_rollout.domain.reminder_plan import MUNICIPALITY_OWNER
from efa_rollout.domain.workdays import iter_working_days
from efa_rollout.services.lookup import campaign_definition, find_enrolment
from efa_rollout.services.waiting import campaign_waits, flag_of
from models import Campaign as CampaignRow
from tests.engine_fixtures import ostalbkreis_with_campaigns
from tests.lifecycle_support import (
    CAL,
    Campaign,
    CliSteps,
    Lifecycle,
    Steps,
    asked_for,
    figures,
    mails,
    max_per_day,
    went_live,
)

pytestmark = pytest.mark.slow

EWA_START, VIBA_START = date(2024, 4, 16), date(2023, 4, 17)
END = date(2025, 1, 3)  # ViBa BW: mandatory from 01.01.2025 (a holiday): the 2nd moves it


def require_approval(campaign_id: str) -> None:
    """The eWA campaign asks for the coordinator's approval of its summary."""
    with Session(get_engine()) as session:
        row = session.get(CampaignRow, campaign_id)
        assert row is not None
        row.definition = {**row.definition, "summary": {"approval": True}}
        session.add(row)
        session.commit()


def open_deadlines(campaign_id: str, ags: str, until: date) -> set[date]:
    """The deadlines of the municipality's own checklist items up to UNTIL."""
    with Session(get_engine()) as session:
        campaign = session.get(CampaignRow, campaign_id)
        assert campaign is not None
        definition = campaign_definition(campaign)
        enrolment = find_enrolment(session, campaign_id, ags)
        go_live = enrolment.go_live or campaign.go_live
        items = definition.items_for(enrolment.role, enrolment.is_pilot)
    from datetime import timedelta

    return {
        go_live + timedelta(days=i.due)
        for i in items
        if i.owner == MUNICIPALITY_OWNER and go_live + timedelta(days=i.due) <= until
    }


def check_campaign(campaign: Campaign, *, checklist_entry: date, go_live: date) -> None:
    """The acceptance conditions for one campaign after the run."""
    live = went_live(campaign.id)
    assert set(campaign.who.diligent) <= live, set(campaign.who.diligent) - live
    with Session(get_engine()) as session:
        waits = campaign_waits(session, campaign.id, today=END)
    stuck = {w.ags: w.waiting.text for w in waits if w.waiting.needs_action}
    assert not set(stuck) & set(campaign.who.diligent), stuck
    assert set(stuck) == set(campaign.who.laggards)
    assert all("Pflichtpunkt" in text for text in stuck.values()), stuck
    assert flag_of(waits) is not None  # the laggards flag the campaign
    messages = mails(campaign.id)
    assert max_per_day(messages) == 1
    first_step = CAL.add_working_days(checklist_entry, 4)
    for ags in campaign.who.diligent + campaign.who.laggards:
        asked = asked_for(messages, ags)
        for deadline in open_deadlines(campaign.id, ags, go_live):
            if deadline < first_step:
                continue  # due before the checklist stage began (or right after it)
            days = asked.get(deadline, [])
            assert days and min(days) <= deadline, (ags, deadline, sorted(asked))
    for ags in campaign.who.laggards:
        kinds = {m.kind for m in messages if m.ags == ags}
        assert "escalation" in kinds, (ags, kinds)
        latest = max(d for days in asked_for(messages, ags).values() for d in days)
        assert latest >= go_live, (ags, latest)  # reminded up to go-live and beyond


def run(steps: Steps, data_dir: Path) -> tuple[Campaign, Campaign]:
    ostalbkreis_with_campaigns(data_dir)
    require_approval(scenario.EWA)
    ewa = Campaign(scenario.EWA, EWA_START)
    viba = Campaign(scenario.VIBA, VIBA_START)
    lifecycle = Lifecycle(steps, [viba, ewa], END)
    statuses: list[tuple[date, str | None]] = []

    def look_at_summary_day(day: date) -> None:
        if day in lifecycle.awaiting.get(scenario.EWA, [])[:1]:
            with Session(get_engine()) as session:
                waits = campaign_waits(session, scenario.EWA, today=day)
            statuses.append((day, flag_of(waits)))
            assert {w.waiting.what for w in waits} == {"Freigabe der Zusammenfassung"}

    lifecycle.on_day.append(look_at_summary_day)
    lifecycle.run()
    assert [day for day, _ in statuses] == [date(2024, 7, 16)]  # eWA summary: -11w
    assert statuses[0][1] is not None and "Freigabe der Zusammenfassung" in statuses[0][1]
    return ewa, viba


def report(label: str, campaigns: tuple[Campaign, ...]) -> None:
    print(f"\n{label}")
    for campaign in campaigns:
        print(f"  {campaign.id}: {figures(campaign.id)}")
    print(
        f"  one municipality across both campaigns, most in a day: {max_per_day(mails(), per_campaign=False)}"
    )


def test_both_campaigns_run_to_mandatory_from_through_the_services(efa_env: Path) -> None:
    ewa, viba = run(Steps(), efa_env)
    check_campaign(ewa, checklist_entry=date(2024, 7, 17), go_live=date(2024, 10, 1))
    check_campaign(viba, checklist_entry=date(2023, 9, 7), go_live=date(2024, 8, 1))
    report("services", (ewa, viba))
    assert max_per_day(mails(), per_campaign=False) == 1  # also across both campaigns


def test_ewa_runs_through_the_cli_alone(efa_env: Path) -> None:
    ostalbkreis_with_campaigns(efa_env)
    require_approval(scenario.EWA)
    steps = CliSteps()
    ewa = Campaign(scenario.EWA, EWA_START)
    Lifecycle(steps, [ewa], date(2024, 11, 15)).run()
    check_campaign(ewa, checklist_entry=date(2024, 7, 17), go_live=date(2024, 10, 1))
    out = "".join(steps.output)
    assert "wartet auf die Freigabe" in out and "Zusammenfassung freigegeben" in out
    report("CLI", (ewa,))


def test_working_days_of_the_run() -> None:
    days = list(iter_working_days(CAL, EWA_START, END))
    assert date(2024, 10, 3) not in days and date(2024, 12, 24) not in days
