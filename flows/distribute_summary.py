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
from efa_rollout.texts import say, table
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
    how = say(
        "flow.distribute_summary.new_version"
        if result["new_version"]
        else "flow.distribute_summary.unchanged"
    )
    lines = [
        say("flow.distribute_summary.title", campaign=campaign, day=local_day(now)),
        "",
        say("flow.distribute_summary.version", version=version, how=f" {how}"),
        say("flow.distribute_summary.queued", count=result["queued"]),
        say("flow.distribute_summary.already", count=result["already"]),
        say("flow.distribute_summary.not_queued", count=result["not_queued"]),
    ]
    if closed:
        lines.append(say("flow.distribute_summary.closed"))
    not_sent = say("flow.distribute_summary.not_sent")
    missing = [r for r in result["rows"] if r["ergebnis"].startswith(not_sent)]
    if missing:
        lines += ["", say("flow.distribute_summary.missing"), ""]
        lines += [
            say(
                "flow.distribute_summary.missing_row",
                name=markdown_cell(r["gemeinde"]),
                ags=r["ags"],
            )
            for r in missing
        ]
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
    column = table("flow.distribute_summary.columns")
    publish_table(
        f"{campaign}-zusammenfassung-versand",
        [
            {
                column["name"]: r["gemeinde"],
                column["ags"]: r["ags"],
                column["version"]: r["version"],
                column["result"]: r["ergebnis"],
            }
            for r in result["rows"]
        ][:500],
        say("flow.distribute_summary.table", campaign=campaign),
    )
    publish_markdown(
        f"{campaign}-zusammenfassung-summary",
        _markdown(campaign, now, result, closed),
        say("flow.distribute_summary.summary"),
    )
    logger.info(
        say(
            "flow.distribute_summary.log",
            campaign=campaign,
            version=result["version"],
            queued=result["queued"],
            already=result["already"],
        )
    )
    return {k: v for k, v in result.items() if k != "rows"}
