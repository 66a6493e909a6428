"""Zusammenfassung nach Plan: on working days, send each campaign's summary on its date.

For every running campaign (or the one named): bring the stages up to date, and when the
summary is due (its date has come, municipalities wait for it, none went out yet) send it. When
the definition asks for the coordinator's approval, the run waits for it in the Prefect UI
(a form: approve, or reject with a note); the decision is kept in our event log, and
`efa summary approve|reject` decides the same way from the CLI. Publishes per campaign what
its municipalities wait for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, pause_flow_run, task
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from pydantic import Field

from efa_rollout.services.clock import resolve_as_of
from efa_rollout.settings import get_settings
from efa_rollout.texts import say, table
from flows._prefect import (
    flow_parameter,
    form_field,
    publish_markdown,
    publish_table,
    run_name,
    tag_run_with_campaign,
)

#: How long a run waits for the approval before it gives up until the next scheduled run.
APPROVAL_TIMEOUT_SECONDS = 4 * 3600
#: The decision form's field descriptions (templates/texts/flows.ini), read when Prefect builds
#: the form's schema.
FORM = table("flow.release_summary.form")


class SummaryDecision(RunInput):
    """The coordinator's decision on a summary (the form in the Prefect UI)."""

    approve: bool = Field(json_schema_extra=form_field(FORM, "approve"))
    note: str = Field("", json_schema_extra=form_field(FORM, "note"))


def _name() -> str:
    return run_name(
        flow_parameter("campaign") or "alle-kampagnen",
        "zusammenfassung-plan",
        flow_parameter("as_of"),
    )


@task(name="release-summary", retries=2, retry_delay_seconds=[2, 10])
def release_task(campaign: str, now: datetime, actor: str) -> dict[str, Any]:
    """Send the summary of CAMPAIGN if it is due and approved; says why not otherwise."""
    from efa_rollout.db import get_engine
    from efa_rollout.services.summary_release import release_summary

    release = release_summary(get_engine(), campaign, now=now, actor=actor)  # plain batch calls
    return {"outcome": release.outcome, "message": release.message, **release.result}


@task(name="record-summary-decision")
def record_decision(campaign: str, decision: SummaryDecision, now: datetime) -> str:
    """Keep the decision from the Prefect UI in our event log."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.summary_release import decide

    with session_scope() as session:
        event = decide(
            session,
            campaign,
            approve=decision.approve,
            note=decision.note,
            actor=say("flow.release_summary.actor"),
            now=now,
        )
        return event.kind


@task(name="publish-waiting")
def publish_waiting(campaign: str, now: datetime) -> str | None:
    """The artifact: who waits for what in CAMPAIGN, and the campaign's flag."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.clock import local_today
    from efa_rollout.services.waiting import campaign_waits, flag_of, waits_markdown, waits_table

    today = local_today(now)
    with session_scope() as session:
        rows = campaign_waits(session, campaign, today=today)
    publish_table(
        f"{campaign}-wartet-auf",
        waits_table(rows)[:500],
        say("flow.release_summary.waiting", campaign=campaign),
    )
    publish_markdown(
        f"{campaign}-wartet-auf-summary",
        waits_markdown(campaign, rows, today),
        say("flow.release_summary.waiting_summary"),
    )
    return flag_of(rows)


@flow(name="Zusammenfassung nach Plan", flow_run_name=_name, log_prints=True)
def release_summaries(
    campaign: str | None = None,
    as_of: datetime | None = None,
    approval_timeout_seconds: int = APPROVAL_TIMEOUT_SECONDS,
) -> dict[str, dict[str, Any]]:
    """Zusammenfassungen am geplanten Tag versenden (nach Freigabe, wenn verlangt)."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.lookup import running_campaign_ids

    tag_run_with_campaign(campaign)  # a run for one campaign; a run for all carries no tag
    logger = get_run_logger()
    now = resolve_as_of(as_of)
    actor = f"zusammenfassung-plan ({get_settings().actor})"
    with session_scope() as session:
        campaign_ids = running_campaign_ids(session, campaign)
    results: dict[str, dict[str, Any]] = {}
    for campaign_id in campaign_ids:
        result = release_task(campaign_id, now, actor)
        if result["outcome"] == "awaiting_approval" and approval_timeout_seconds > 0:
            result = _wait_for_approval(campaign_id, now, actor, approval_timeout_seconds, result)
        result["flag"] = publish_waiting(campaign_id, now)
        logger.info(
            say("flow.release_summary.log", campaign=campaign_id, message=result["message"])
        )
        results[campaign_id] = {k: v for k, v in result.items() if k != "rows"}
    return results


def _wait_for_approval(
    campaign_id: str, now: datetime, actor: str, timeout: int, result: dict[str, Any]
) -> dict[str, Any]:
    """Pause for the coordinator's decision in the UI; on approval send the summary."""
    logger = get_run_logger()
    logger.info(say("flow.release_summary.awaiting", campaign=campaign_id))
    try:
        decision = pause_flow_run(
            wait_for_input=SummaryDecision, timeout=timeout, key=f"freigabe-{campaign_id}"
        )
    except FlowPauseTimeout:
        message = f"{result['message']} {say('flow.release_summary.timed_out')}"
        return {**result, "message": message}
    kind = record_decision(campaign_id, decision, now)
    if kind != "summary_approved":
        return {**result, "message": say("flow.release_summary.rejected", note=decision.note)}
    return release_task(campaign_id, now, actor)
