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

from prefect import flow, get_run_logger

from efa_rollout.output_safety import markdown_cell
from efa_rollout.services import orchestration
from efa_rollout.services.clock import local_day, resolve_as_of
from flows._prefect import (
    flow_parameter,
    publish_markdown,
    publish_table,
    run_name,
    tag_run_with_campaign,
)
from tasks.runner import TaskRunner


def _name() -> str:
    return run_name(flow_parameter("campaign") or "?", "zusammenfassung", flow_parameter("as_of"))


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
    tag_run_with_campaign(campaign)
    logger = get_run_logger()
    now = resolve_as_of(as_of)
    result = orchestration.distribute_summary(
        campaign, now, close_collection=close_collection, runner=TaskRunner()
    )
    closed = result["collection_closed"]
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
    return {k: v for k, v in result.items() if k != "rows"}
