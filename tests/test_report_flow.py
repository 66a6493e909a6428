"""The weekly report flow under Prefect: files, artifacts, one coordinator mail per week."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from models import OutboxMessage
from tests.test_reports import AS_OF, build_known_campaign

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


async def _artifacts() -> list[Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_artifacts()


def test_weekly_report_flow(prefect_api: None, session: Session, efa_env: Path) -> None:
    from flows.weekly_report import weekly_report

    build_known_campaign(session)
    reports = weekly_report(as_of=AS_OF)  # every running campaign
    assert [r.campaign_id for r in reports] == ["test-ostalb"]
    report = reports[0]
    assert report.lights == {"red": 3, "yellow": 2, "green": 1, "grey": 2}
    assert report.mail_note == "Mail an die Koordination eingereiht"
    for fmt in ("html", "xlsx", "md"):
        path = efa_env / "reports" / f"test-ostalb-2025-05-20.{fmt}"
        assert report.files[fmt] == path.resolve() and path.stat().st_size > 0

    again = weekly_report(campaign="test-ostalb", as_of=AS_OF + timedelta(days=1))
    assert again[0].mail_note == "Mail für KW 21/2025 war bereits eingereiht"
    mails = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "weekly_report")).all()
    assert [(m.sequence, m.recipients) for m in mails] == [
        (202521, ["egov-koordination@ostalbkreis.example"])
    ]

    artifacts = asyncio.run(_artifacts())
    keys = {a.key for a in artifacts if a.key}
    assert {
        "wochenbericht-test-ostalb",
        "wochenbericht-test-ostalb-zusammenfassung",
        "wochenbericht-test-ostalb-html",
        "wochenbericht-test-ostalb-xlsx",
        "wochenberichte-alle",
    } <= keys
    links = [str(a.data) for a in artifacts if a.key == "wochenbericht-test-ostalb-html"]
    assert any("reports/test-ostalb-2025-05-20.html)" in link for link in links), links
    summary = next(a for a in artifacts if a.key == "wochenbericht-test-ostalb-zusammenfassung")
    assert "# Statusbericht: Testdienst – Einführung" in str(summary.data)
