"""Shared Prefect plumbing for the flows: run names, tags, artifacts, progress."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from efa_rollout.db import session_scope
from efa_rollout.output_safety import strip_controls
from efa_rollout.prefect_api import campaign_tags
from efa_rollout.services.clock import local_day, resolve_as_of
from efa_rollout.texts import table
from models import Campaign


def run_name(subject: str, action: str, as_of: datetime | None) -> str:
    """A flow-run name that says what ran: 'ewa-ostalbkreis · tick · 2025-03-14'."""
    return f"{subject} · {action} · {local_day(resolve_as_of(as_of))}"


def artifact_key(*parts: str) -> str:
    """An artifact key following Prefect's rule ^[a-z0-9-]*$."""
    key = "-".join(parts).lower()
    key = key.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", key)).strip("-")[:200]


def form_field(labels: Mapping[str, str], name: str) -> Callable[[dict[str, Any]], None]:
    """A form field's `json_schema_extra`: its title and description from LABELS (a lazy catalogue
    section, keys NAME_title and NAME_description), filled in when the form's schema is built.

    For a pause form (a RunInput, built when the run pauses) importing the flow reads no text. A
    flow's own parameters are no use: @flow builds their schema when the module is imported."""

    def fill(schema: dict[str, Any]) -> None:
        for part in ("title", "description"):
            if f"{name}_{part}" in labels:
                schema[part] = labels[f"{name}_{part}"]

    return fill


def publish_table(key: str, rows: list[dict[str, Any]], description: str) -> None:
    """A table artifact (no-op outside a flow run)."""
    from prefect.artifacts import create_table_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    safe = [{k: strip_controls(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows]
    create_table_artifact(key=artifact_key(key), table=safe, description=description)


def publish_markdown(key: str, markdown: str, description: str) -> None:
    """A Markdown artifact (no-op outside a flow run)."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    create_markdown_artifact(key=artifact_key(key), markdown=markdown, description=description)


class Progress:
    """A progress artifact updated while a flow runs (silent outside a flow run)."""

    def __init__(self, key: str, description: str) -> None:
        from prefect.artifacts import create_progress_artifact
        from prefect.context import FlowRunContext

        self.artifact_id: UUID | None = None
        if FlowRunContext.get() is not None:
            self.artifact_id = create_progress_artifact(  # type: ignore[assignment]  # sync flows: async_dispatch returns the UUID, not a coroutine
                progress=0.0, key=artifact_key(key), description=description
            )

    def update(self, done: int, total: int) -> None:
        """Set the progress to DONE of TOTAL."""
        from prefect.artifacts import update_progress_artifact

        if self.artifact_id is not None:
            share = 100.0 if total == 0 else round(100.0 * done / total, 1)
            update_progress_artifact(artifact_id=self.artifact_id, progress=share)


def tag_run_with_campaign(campaign_id: str | None) -> None:
    """Give this flow run its campaign's tags, also when a trigger or schedule started it.

    A deployment trigger cannot set tags (only parameters), so a run started by an event would
    carry only the deployment's tags; the run adds `campaign:`/`service:` itself, and the UI's
    tag filter finds it next to the runs the CLI started.
    """
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if campaign_id is None or context is None or context.flow_run is None:
        return
    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        service_key = campaign.definition.get("service_key") if campaign else None
    if campaign is None:
        return  # the flow itself says that the campaign does not exist
    have = list(context.flow_run.tags)
    missing = [tag for tag in campaign_tags(campaign_id, service_key) if tag not in have]
    if not missing:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(context.flow_run.id, tags=[*have, *missing])
    context.flow_run.tags = [*have, *missing]


def flow_parameter(name: str) -> Any:
    """A parameter of the current flow run (for flow_run_name callables)."""
    from prefect.runtime import flow_run

    return flow_run.parameters.get(name)


def stage_table(rows: list[dict[str, Any]], limit: int = 500) -> list[dict[str, Any]]:
    """Changed rows first, then the rest, at most LIMIT (the UI is not a spreadsheet)."""
    change = table("flow.advance.columns")["change"]
    changed = [r for r in rows if r.get(change)]
    unchanged = [r for r in rows if not r.get(change)]
    return (changed + unchanged)[:limit]
