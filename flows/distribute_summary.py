"""Zusammenfassung verteilen: build the campaign's summary and send each municipality its copy.

Reads top to bottom like the coordinator's step: optionally close the information collection,
bring the stages up to date (the tick's rules), build the summary (a new version only when the
content changed), queue it to every municipality in summary_distribution or later that has not
had this version, and bring the stages up to date again (those who got it move on to the
checklist follow-up). Running it twice queues nothing the second time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, tags, task

from efa_rollout.output_safety import markdown_cell
from efa_rollout.services.batches import chunks
from efa_rollout.services.clock import local_day, resolve_as_of
from efa_rollout.settings import get_settings
from flows._prefect import campaign_tags, flow_parameter, publish_markdown, publish_table, run_name


def _name() -> str:
    return run_name(flow_parameter("campaign") or "?", "zusammenfassung", flow_parameter("as_of"))


@task(name="close-collection")
def close_collection_task(campaign: str, now: datetime, actor: str) -> bool:
    """Close the information collection of CAMPAIGN (once; logged as an event)."""
    from efa_rollout.db import session_scope
    from efa_rollout.services import campaigns

    with session_scope() as session:
        return campaigns.close_collection(session, campaign, now=now, actor=actor)


@task(name="advance-stages", retries=2, retry_delay_seconds=[2, 10])
def advance_stages(campaign: str, now: datetime, actor: str) -> int:
    """Apply the due stage transitions (as the tick does, never go-live); returns how many."""
    from efa_rollout.db import get_engine, session_scope
    from efa_rollout.services import lookup, progression

    engine = get_engine()
    with session_scope(engine) as session:
        ids = lookup.enrolment_ids(session, campaign)
    changes = 0
    for batch in chunks(ids):
        result = progression.advance_batch(
            engine,
            campaign,
            list(batch),
            now=now,
            actor=actor,
            include_go_live=False,
            send_latest_summary=False,  # this flow decides which version goes out
        )
        changes += len(result.changes)
    return changes


@task(name="build-and-queue-summary", retries=2, retry_delay_seconds=[2, 10])
def build_and_queue(campaign: str, now: datetime, actor: str) -> dict[str, Any]:
    """Build the summary and queue it to those who have not had this version."""
    from efa_rollout.db import get_engine
    from efa_rollout.services.summary import distribute_summary as distribute

    return distribute(get_engine(), campaign, now=now, actor=actor)


def _markdown(campaign: str, now: datetime, result: dict[str, Any], closed: bool) -> str:
    version = result["version"]
    lines = [
        f"# {campaign} · Zusammenfassung · {local_day(now)}",
        "",
        f"- Version: **{version}**"
        + (" (neu erstellt)" if result["new_version"] else " (unverändert)"),
        f"- in den Postausgang gestellt: **{result['queued']}**",
        f"- hatten diese Version bereits: **{result['already']}**",
        f"- ohne zustellbare Ansprechperson: **{result['not_queued']}**",
    ]
    if closed:
        lines.append("- Informationserhebung durch die Koordination **geschlossen**")
    missing = [r for r in result["rows"] if r["ergebnis"].startswith("nicht versandt")]
    if missing:
        lines += ["", "## Ohne zustellbare Ansprechperson", ""]
        lines += [f"- {markdown_cell(r['gemeinde'])} ({r['ags']})" for r in missing]
    return "\n".join(lines)


@flow(name="Zusammenfassung verteilen", flow_run_name=_name, log_prints=True)
def distribute_summary(
    campaign: str, as_of: datetime | None = None, close_collection: bool = False
) -> dict[str, Any]:
    """Zusammenfassung erstellen und an alle Gemeinden ab der Stufe »Zusammenfassung verteilen« senden."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.lookup import get_campaign

    logger = get_run_logger()
    now = resolve_as_of(as_of)
    actor = f"zusammenfassung ({get_settings().actor})"
    with session_scope() as session:
        service_key = get_campaign(session, campaign).definition.get("service_key")
    with tags(*campaign_tags(campaign, service_key)):
        closed = close_collection_task(campaign, now, actor) if close_collection else False
        advance_stages(campaign, now, actor)
        result = build_and_queue(campaign, now, actor)
        moved = advance_stages(campaign, now, actor)
    publish_table(
        f"{campaign}-zusammenfassung-versand",
        [
            {
                "Gemeinde": r["gemeinde"],
                "AGS": r["ags"],
                "Version": r["version"],
                "Ergebnis": r["ergebnis"],
            }
            for r in result["rows"]
        ][:500],
        f"{campaign}: wer welche Version der Zusammenfassung erhalten hat",
    )
    publish_markdown(
        f"{campaign}-zusammenfassung-summary",
        _markdown(campaign, now, result, closed),
        "Zusammenfassung verteilt",
    )
    logger.info(
        "Zusammenfassung %s Version %s: %s in den Postausgang gestellt, %s hatten sie bereits.",
        campaign,
        result["version"],
        result["queued"],
        result["already"],
    )
    return {
        **{k: v for k, v in result.items() if k != "rows"},
        "collection_closed": closed,
        "stage_changes": moved,
    }
