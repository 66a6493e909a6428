"""A start checks every mail renders before it writes anything; a fixed definition resumes it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select
from typer.testing import CliRunner

from efa_rollout.cli import app
from efa_rollout.errors import UserError
from efa_rollout.mail.delivery import deliver
from efa_rollout.services import orchestration
from flows.start_campaign import StartCampaignInput, start_campaign
from models import Campaign, ChecklistItemState, Enrolment, Event, OutboxMessage
from tests.conftest import GV100AD, REPO_ROOT
from tests.mail_support import add_contact

# Prefect (imported above, at collection) sets up its log handlers on the real stderr, not on
# a CliRunner stream that is closed after the command.
runner = CliRunner()
NOW = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
CAMPAIGN = "eigene-ostalbkreis"
BROKEN = 'mail:\n  reminder: "Bitte denken Sie an {{ unbekannte_variable }}."\n'
FIXED = 'mail:\n  reminder: "Bitte denken Sie an {{ frist | frist }}."\n'


def efa(*args: str, code: int = 0) -> str:
    """The command's output; for a refused one the German message the coordinator sees."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (args, result.output, result.exception)
    if code:
        assert isinstance(result.exception, UserError), result.exception
        return result.exception.render()
    return result.output


def _write_definition(folder: Path, extra: str) -> Path:
    source = (REPO_ROOT / "templates" / "campaigns" / "ewa.yaml").read_text(encoding="utf-8")
    folder.mkdir(exist_ok=True)
    path = folder / "eigene.yaml"
    path.write_text(source.replace("key: ewa\n", "key: eigene\n", 1) + extra, encoding="utf-8")
    return path


@pytest.fixture
def broken_campaign(efa_env: Path, engine: Engine) -> Path:
    """A campaign in the Ostalbkreis whose reminder paragraph names an unknown variable."""
    path = _write_definition(Path.cwd() / "campaigns", BROKEN)
    efa("municipalities", "import", str(GV100AD), "--district", "08136")
    with Session(engine) as session:
        add_contact(session, "08136019", "hauptamt@essingen.example")
        add_contact(session, "08136088", "hauptamt@aalen.example")
        session.commit()
    out = efa(
        "campaign",
        "create",
        "eigene",
        "--district",
        "08136",
        "--go-live",
        "2025-09-01",
        "--allow-past",
    )
    assert CAMPAIGN in out
    return path


def _counts(engine: Engine) -> tuple[int, int, str]:
    with Session(engine) as session:
        enrolments = session.exec(
            select(func.count()).where(Enrolment.campaign_id == CAMPAIGN)
        ).one()
        outbox = session.exec(
            select(func.count()).where(OutboxMessage.campaign_id == CAMPAIGN)
        ).one()
        status = session.get(Campaign, CAMPAIGN).status  # type: ignore[union-attr]
    return enrolments, outbox, status


def test_broken_paragraph_refuses_the_start_and_writes_nothing(
    broken_campaign: Path, engine: Engine
) -> None:
    out = efa("campaign", "start", CAMPAIGN, "--no-prefect", "--as-of", "2025-03-10", code=1)
    assert "kann nicht gestartet werden" in out
    assert "Definition: campaigns/eigene.yaml" in out  # the definition file
    assert "Mail-Art »reminder«, Feld mail.reminder" in out  # the kind and the paragraph
    assert "unbekannte_variable" in out
    assert "Es wurde nichts geschrieben" in out
    assert f"efa campaign start {CAMPAIGN} --refresh-definition" in out
    assert "Traceback" not in out
    assert _counts(engine) == (0, 0, "created")

    # Fixing the file alone does not help: the campaign keeps its snapshot ...
    _write_definition(broken_campaign.parent, FIXED)
    efa("campaign", "start", CAMPAIGN, "--no-prefect", "--as-of", "2025-03-10", code=1)
    assert _counts(engine) == (0, 0, "created")
    # ... the refresh takes the fixed file, and the start completes.
    out = efa(
        "campaign",
        "start",
        CAMPAIGN,
        "--no-prefect",
        "--as-of",
        "2025-03-10",
        "--refresh-definition",
    )
    assert "gestartet" in out and "2 Informationsanfragen" in out
    enrolments, outbox, status = _counts(engine)
    assert enrolments > 2 and outbox == 2 and status == "running"
    with Session(engine) as session:
        campaign = session.get(Campaign, CAMPAIGN)
        assert campaign is not None and "frist" in campaign.definition["mail"]["reminder"]
        event = session.exec(select(Event).where(Event.kind == "definition_refreshed")).one()
        assert "eigene.yaml" in (event.reason or "")


def test_after_mail_was_sent_the_refresh_is_refused(broken_campaign: Path, engine: Engine) -> None:
    _write_definition(broken_campaign.parent, FIXED)
    now = NOW
    orchestration.start_campaign(CAMPAIGN, now, refresh_definition=True)
    report = deliver(now=now)
    assert report.total("sent") == 2
    _write_definition(broken_campaign.parent, BROKEN.replace("unbekannte_variable", "frist"))
    with Session(engine) as session:
        before = session.get(Campaign, CAMPAIGN).definition  # type: ignore[union-attr]
    out = efa("campaign", "start", CAMPAIGN, "--no-prefect", "--refresh-definition", code=1)
    assert "kann nicht neu übernommen werden" in out
    assert "2 Mail(s) der Kampagne stehen bereits im Postausgang, davon 2 versandt" in out
    assert "neue Kampagne" in out
    with Session(engine) as session:
        assert session.get(Campaign, CAMPAIGN).definition == before  # type: ignore[union-attr]
    # Without the refresh the start stays idempotent.
    orchestration.start_campaign(CAMPAIGN, now)
    assert _counts(engine)[1] == 2


def test_refresh_repairs_a_campaign_left_half_started_by_an_old_failed_start(
    broken_campaign: Path, engine: Engine
) -> None:
    """The state an earlier version left: running, enrolments, no information request."""
    with Session(engine) as session:
        campaign = session.get(Campaign, CAMPAIGN)
        assert campaign is not None
        campaign.status = "running"
        session.add(campaign)
        session.commit()
    runner = orchestration.BatchRunner()
    with Session(engine) as session:
        from efa_rollout.services import campaigns

        pending = campaigns.pending_enrolment_ags(session, session.get(Campaign, CAMPAIGN))  # type: ignore[arg-type]
    runner.enrol(CAMPAIGN, pending, NOW, "test")
    with pytest.raises(UserError) as caught:
        orchestration.start_campaign(CAMPAIGN, NOW)
    assert "--refresh-definition" in caught.value.render()
    _write_definition(broken_campaign.parent, FIXED)
    figures = orchestration.start_campaign(CAMPAIGN, NOW, refresh_definition=True)
    assert figures["mails_queued"] == 2 and figures["enrolled"] == 0
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(ChecklistItemState)).one() > 0


@pytest.mark.prefect
@pytest.mark.slow
def test_the_prefect_start_flow_checks_and_resumes_the_same_way(
    broken_campaign: Path, engine: Engine, prefect_harness: None
) -> None:
    with pytest.raises(UserError) as caught:
        start_campaign(params=StartCampaignInput(campaign=CAMPAIGN, as_of=NOW))
    assert "Mail-Art »reminder«" in caught.value.render()
    assert _counts(engine) == (0, 0, "created")
    _write_definition(broken_campaign.parent, FIXED)
    figures = start_campaign(
        params=StartCampaignInput(campaign=CAMPAIGN, as_of=NOW, refresh_definition=True)
    )
    assert figures["mails_queued"] == 2
    assert _counts(engine)[1:] == (2, "running")
