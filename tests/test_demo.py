"""The README's first command: the whole demo, under the session's Prefect test server."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, col, func, select

from efa_rollout.db import get_engine
from efa_rollout.demo.runner import run_demo
from efa_rollout.demo.scenario import EWA, SIMULATION, VIBA
from efa_rollout.domain.stages import Stage
from models import Enrolment, Event, OutboxMessage

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def test_demo_runs_the_whole_timeline(prefect_api: None, efa_env: Path) -> None:
    lines: list[str] = []
    run_demo(efa_env, lines.append)

    with Session(get_engine()) as session:
        stages = {
            (campaign, stage): count
            for campaign, stage, count in session.exec(
                select(Enrolment.campaign_id, Enrolment.stage, func.count()).group_by(
                    Enrolment.campaign_id, Enrolment.stage
                )
            )
        }
        kinds = dict(
            session.exec(
                select(OutboxMessage.kind, func.count()).group_by(OutboxMessage.kind)
            ).all()
        )
        unsent = session.exec(select(func.count()).where(col(OutboxMessage.status) != "sent")).one()
        simulated = session.exec(select(func.count()).where(Event.actor == SIMULATION)).one()
    # ViBa BW: 34 municipalities, all live and past the mandatory date
    assert sum(c for (camp, _), c in stages.items() if camp == VIBA) == 34
    assert stages.get((VIBA, Stage.MANDATORY), 0) + stages.get((VIBA, Stage.COMPLETED), 0) == 34
    # eWA: all 42; those with open required items wait in checklist follow-up
    assert sum(c for (camp, _), c in stages.items() if camp == EWA) == 42
    assert stages.get((EWA, Stage.CHECKLIST_FOLLOW_UP), 0) > 0
    assert stages.get((EWA, Stage.COMPLETED), 0) + stages.get((EWA, Stage.AFTER_CARE), 0) > 0
    assert kinds["information_request"] == 34 + 42
    assert kinds["summary"] == 34 + 42
    assert kinds.get("reminder", 0) > 0 and kinds.get("go_live", 0) > 0
    assert unsent == 0
    assert simulated > 0  # everything the municipalities did is marked as simulated
    mails = list((efa_env / "mail").glob("*.eml"))
    assert len(mails) == sum(kinds.values())
    reports = [line for line in lines if "Bericht:" in line]
    assert len(reports) == 4
    assert all(Path(line.split()[-1]).exists() for line in reports)
    assert any("bleibt bis" in line for line in lines)

    # The newest mail of each municipality carries a link that still opens the portal.
    import re
    from datetime import UTC, datetime
    from email import message_from_bytes, policy

    from efa_rollout.services.links import check_token

    # The links are read from the delivered mails: the database keeps none (placeholder).
    delivered_links: dict[str, str] = {}
    for path in mails:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        text = message.get_body(("plain",))
        found = re.search(r"/p/([A-Za-z0-9_-]+)", text.get_content() if text else "")
        if found:
            delivered_links[str(message["Message-ID"])] = found[1]
    newest: dict[tuple[str, str], tuple[int, str]] = {}
    with Session(get_engine()) as session:
        for row in session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))):
            link = delivered_links.get(row.message_id)
            if link and row.campaign_id and row.ags:
                newest[(row.campaign_id, row.ags)] = (row.id or 0, link)
        now = datetime.now(UTC)
        states = {check_token(session, token, now=now).state.value for _, token in newest.values()}
    assert len(newest) == 34 + 42 and states == {"valid"}, states
