"""The summary on its date: due or not, approval from the CLI (and the Prefect UI), preview."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from efa_rollout.cli import app
from efa_rollout.db import get_engine
from efa_rollout.demo import scenario
from efa_rollout.errors import UserError
from efa_rollout.services.summary_release import (
    AWAITING_APPROVAL,
    NOT_DUE,
    SENT,
    decide,
    release_summary,
    summary_date,
)
from models import Campaign, Event, OutboxMessage
from tests.engine_fixtures import at, ostalbkreis_with_campaigns
from tests.lifecycle_support import Steps

EWA = scenario.EWA
runner = CliRunner()


def efa(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def ewa(efa_env: Path) -> str:
    """eWA (go-live 01.10.2024, summary 16.07.2024) started, everybody answered (no approval)."""
    ostalbkreis_with_campaigns(efa_env)
    Steps().start(EWA, at("2024-04-16"))
    with Session(get_engine()) as session:
        campaign = session.get(Campaign, EWA)
        assert campaign is not None and summary_date(campaign) == date(2024, 7, 16)
    return EWA


def approval_needed(campaign_id: str) -> None:
    with Session(get_engine()) as session:
        row = session.get(Campaign, campaign_id)
        assert row is not None
        row.definition = {**row.definition, "summary": {"approval": True}}
        session.add(row)
        session.commit()


def summary_mails() -> int:
    with Session(get_engine()) as session:
        return len(session.exec(select(OutboxMessage).where(OutboxMessage.kind == "summary")).all())


def test_the_summary_goes_out_on_its_date_and_once(ewa: str) -> None:
    engine = get_engine()
    early = release_summary(engine, ewa, now=at("2024-07-15"), actor="test")
    assert early.outcome == NOT_DUE and "16.07.2024" in early.message
    sent = release_summary(engine, ewa, now=at("2024-07-16"), actor="test")
    assert sent.outcome == SENT and sent.result["queued"] == 42 and sent.stage_changes == 42
    again = release_summary(engine, ewa, now=at("2024-07-17"), actor="test")
    assert again.outcome == NOT_DUE and "bereits" in again.message
    assert summary_mails() == 42


def test_approval_from_the_cli_with_rejection_and_note(ewa: str) -> None:
    approval_needed(ewa)
    out = efa("summary", "send", ewa, "--when-due", "--as-of", "2024-07-16T07:15:00+02:00")
    assert "wartet auf die Freigabe" in out and summary_mails() == 0
    status = efa("campaign", "status", ewa, "--as-of", "2024-07-16T09:00:00+02:00")
    assert "Achtung: 42 Gemeinde(n) kommen ohne Zutun nicht weiter" in status
    assert "wartet auf: Freigabe der Zusammenfassung" in status
    tick = efa("campaign", "tick", ewa, "--no-prefect", "--as-of", "2024-07-16T10:00:00+02:00")
    assert "0 Stufenwechsel" in tick and "Warum keine: 42 × wartet auf: Freigabe" in tick
    assert f"Freigeben mit: efa summary approve {ewa}" in tick
    rejected = efa("summary", "reject", ewa, "--note", "Termine prüfen", "--as-of", "2024-07-16")
    assert "abgelehnt (Termine prüfen)" in rejected and summary_mails() == 0
    status = efa("campaign", "status", ewa, "--as-of", "2024-07-16T11:00:00+02:00")
    assert "überarbeitete Zusammenfassung (abgelehnt: Termine prüfen)" in status
    preview = efa("summary", "preview", ewa, "--as-of", "2024-07-16")
    assert "abgelehnt" in preview and "42 Gemeinden warten darauf" in preview
    pdf = Path(preview.split("PDF:")[1].split()[0])
    assert pdf.read_bytes().startswith(b"%PDF") and summary_mails() == 0
    approved = efa("summary", "approve", ewa, "--as-of", "2024-07-17T09:00:00+02:00")
    assert "freigegeben" in approved and "42 in den Postausgang" in approved
    assert summary_mails() == 42
    with Session(get_engine()) as session:
        kinds = [
            e.kind
            for e in session.exec(
                select(Event).where(Event.campaign_id == ewa, Event.kind.startswith("summary_"))  # type: ignore[attr-defined]
            )
        ]
    assert kinds.count("summary_approval_requested") == 1
    assert "summary_rejected" in kinds and "summary_approved" in kinds


def test_a_rejection_needs_a_note_and_a_campaign_without_approval_refuses(ewa: str) -> None:
    with Session(get_engine()) as session, pytest.raises(UserError, match="braucht keine Freigabe"):
        decide(session, ewa, approve=True, note=None, actor="t", now=at("2024-07-16"))
    approval_needed(ewa)
    with Session(get_engine()) as session, pytest.raises(UserError, match="--note"):
        decide(session, ewa, approve=False, note="  ", actor="t", now=at("2024-07-16"))


def test_send_before_the_date_is_the_coordinators_choice_but_never_without_approval(
    ewa: str,
) -> None:
    approval_needed(ewa)
    out = efa("summary", "send", ewa, "--close-collection", "--as-of", "2024-06-03")
    assert "wartet auf die Freigabe" in out and summary_mails() == 0
    released = release_summary(get_engine(), ewa, now=at("2024-06-03"), actor="t", force=True)
    assert released.outcome == AWAITING_APPROVAL


@pytest.mark.prefect
@pytest.mark.slow
def test_the_scheduled_flow_waits_for_approval_in_the_prefect_ui(
    prefect_api: None, ewa: str
) -> None:
    """The run pauses with a form; resuming it with approve=True sends the summary."""
    import threading
    import time

    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    from flows.release_summary import release_summaries

    approval_needed(ewa)
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(
            release_summaries(campaign=ewa, as_of=at("2024-07-16", 7), approval_timeout_seconds=120)
        )
    )
    thread.start()
    paused = None
    deadline = time.monotonic() + 90
    while paused is None and time.monotonic() < deadline:
        time.sleep(1)
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs()
        paused = next((r for r in runs if r.state and r.state.is_paused() and ewa in r.name), None)
    assert paused is not None, "the run did not pause for the approval"
    resume_flow_run(paused.id, run_input={"approve": True, "note": "passt"})
    thread.join(timeout=90)
    assert result[ewa]["outcome"] == SENT and result[ewa]["queued"] == 42
    with Session(get_engine()) as session:
        decision = session.exec(
            select(Event).where(Event.campaign_id == ewa, Event.kind == "summary_approved")
        ).one()
    assert decision.actor == "Koordination (Prefect-Oberfläche)" and decision.reason == "passt"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    waiting = [a for a in artifacts if a.key == f"{ewa}-wartet-auf-summary"]
    assert waiting and "wartet auf" in str(waiting[-1].data)
    assert "ohne weiteres Zutun voran" in str(waiting[-1].data)  # all moved on after approval
