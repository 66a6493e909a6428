"""The delivery flow: batches, the returned figures, run name and artifacts under Prefect."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

import flows.deliver_outbox as module
from efa_rollout.services.mail_preview import queue_test_mail
from tasks.delivery import deliver_batch
from tests.mail_support import NOW


def _queue(session: Session, count: int) -> None:
    for i in range(count):
        queue_test_mail(session, address=f"a{i}@x.example", kind="go_live", now=NOW)
    session.commit()


def test_flow_logic_batches_and_totals(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    _queue(session, 7)
    monkeypatch.setattr(module, "BATCH_SIZE", 3)
    monkeypatch.setattr(module, "deliver_batch", deliver_batch.fn)
    result = module.deliver_outbox.fn(as_of=NOW, limit=None)
    assert result["bearbeitet"] == 7 and result["zugestellt"] == 7
    assert module.deliver_outbox.fn(as_of=NOW, limit=None)["bearbeitet"] == 0


def test_flow_logic_respects_the_limit(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    _queue(session, 7)
    monkeypatch.setattr(module, "BATCH_SIZE", 3)
    monkeypatch.setattr(module, "deliver_batch", deliver_batch.fn)
    assert module.deliver_outbox.fn(as_of=NOW, limit=5)["bearbeitet"] == 5


def test_summary_markdown_points_to_unknown_mail() -> None:
    rows = [
        {
            "Kampagne": "viba",
            "zugestellt": 3,
            "erneuter Versuch": 1,
            "fehlgeschlagen": 0,
            "ungewiss": 1,
        }
    ]
    batches = [{"attempted": 5, "transport": "smtp", "recovered_unknown": 1, "rows": rows}]
    text = module.summary_markdown(rows, batches, "10.03.2025")
    assert "# Postausgang am 10.03.2025" in text
    assert "| viba | 3 | 1 | 0 | 1 |" in text
    assert "**2 Nachricht(en) mit ungewisser Zustellung**" in text


async def _runs_and_artifacts() -> tuple[list[Any], list[Any]]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_flow_runs(), await client.read_artifacts()


@pytest.mark.prefect
def test_flow_under_prefect(prefect_api: None, efa_env: Path, session: Session) -> None:
    _queue(session, 3)
    as_of = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
    result = module.deliver_outbox(as_of=as_of)
    assert result["zugestellt"] == 3
    runs, artifacts = asyncio.run(_runs_and_artifacts())
    assert "outbox · zustellung · 2025-03-10" in {run.name for run in runs}
    keys = {a.key for a in artifacts}
    assert {"postausgang", "postausgang-zusammenfassung"} <= keys
