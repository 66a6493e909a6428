"""The flows under Prefect: run names, tags and artifacts, checked through the Prefect API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.engine_fixtures import EWA, at, ostalbkreis_with_campaigns, snapshot

pytestmark = pytest.mark.prefect


async def _runs_and_artifacts() -> tuple[list[Any], list[Any]]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_flow_runs(), await client.read_artifacts()


def test_flows_name_their_runs_tag_them_and_publish_artifacts(
    prefect_api: None, efa_env: Path
) -> None:
    from flows.go_live import go_live
    from flows.start_campaign import StartCampaignInput, start_campaign
    from flows.tick import tick

    ostalbkreis_with_campaigns(efa_env)
    from prefect import tags

    with tags("campaign:" + EWA, "service:ewa"):
        started = start_campaign(params=StartCampaignInput(campaign=EWA, as_of=at("2024-04-16")))
    assert started["enrolments"] == 42
    tick(campaign=EWA, as_of=at("2024-07-10"))
    before = snapshot(EWA)
    tick(campaign=EWA, as_of=at("2024-07-10"))  # idempotent under Prefect too
    assert snapshot(EWA) == before
    go_live(campaign=EWA, as_of=at("2024-10-01"))

    runs, artifacts = asyncio.run(_runs_and_artifacts())
    runs = [run for run in runs if run.name.startswith(f"{EWA} · ")]  # the server is shared
    names = {run.name for run in runs}
    assert f"{EWA} · start · 2024-04-16" in names
    assert f"{EWA} · tick · 2024-07-10" in names
    assert f"{EWA} · go-live · 2024-10-01" in names
    assert all(run.state is not None and run.state.is_completed() for run in runs)
    start_run = next(r for r in runs if r.name == f"{EWA} · start · 2024-04-16")
    assert {"campaign:" + EWA, "service:ewa"} <= set(start_run.tags)
    assert start_run.tags.count("campaign:" + EWA) == 1  # given by the caller, not added twice
    # tick and go-live ran without a tags context, as when a trigger or schedule starts them
    for run in runs:
        assert {"campaign:" + EWA, "service:ewa"} <= set(run.tags), run.name
    keys = {a.key for a in artifacts if a.key}
    assert {f"{EWA}-tick-stufen", f"{EWA}-tick-summary", f"{EWA}-start-summary"} <= keys
    # 42 municipalities are one batch: no progress bar that would only ever show 100 %
    assert f"{EWA}-tick-progress" not in keys and f"{EWA}-go-live-progress" not in keys
    table = next(a for a in artifacts if a.key == f"{EWA}-tick-stufen")
    assert "Zusammenfassung verteilen" in str(table.data)
    assert all(a.key is None or a.key == a.key.lower() for a in artifacts)
