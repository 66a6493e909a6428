"""Flow: read the bounce mailbox, apply delivery reports, show who cannot be reached.

The same work without Prefect: `efa mail bounces` (efa_rollout.services.bounces).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from efa_rollout.domain.text import german_date
from efa_rollout.output_safety import markdown_cell
from efa_rollout.texts import say
from flows._prefect import local_day, publish_markdown, publish_table, resolve_as_of, run_name
from tasks.bounces import list_unreachable, process_bounce_mailbox

FLOW_NAME = "process-bounces"


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    as_of = flow_run.parameters.get("as_of")
    if isinstance(as_of, str):
        as_of = datetime.fromisoformat(as_of)
    return run_name("postfach", "unzustellbar", as_of)


def summary_markdown(result: dict[str, Any], unreachable: list[dict[str, Any]], day: str) -> str:
    """The run's Markdown summary: what was read, and the municipalities nobody can reach."""
    lines = [say("flow.process_bounces.title", day=day), "", result["summary"], ""]
    if unreachable:
        lines += [
            say("flow.process_bounces.unreachable", count=len(unreachable)),
            "",
            say("flow.process_bounces.unreachable_head"),
            "|---|---|---|---|",
            *(
                "| "
                + " | ".join(markdown_cell(r[k]) for k in ("Kampagne", "Gemeinde", "AGS", "Grund"))
                + " |"
                for r in unreachable
            ),
        ]
    else:
        lines.append(say("flow.process_bounces.all_reachable"))
    return "\n".join(lines) + "\n"


@flow(name=FLOW_NAME, flow_run_name=_flow_run_name, log_prints=False)
def process_bounces(as_of: datetime | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Process the bounce mailbox once; artifacts: outcomes, unreachable municipalities."""
    moment = resolve_as_of(as_of)
    result = process_bounce_mailbox(moment, dry_run)
    unreachable = list_unreachable(moment)
    publish_table(
        "unzustellbar-meldungen", result["outcomes"], say("flow.process_bounces.outcomes")
    )
    publish_table(
        "gemeinden-ohne-erreichbare-ansprechperson",
        unreachable,
        say("flow.process_bounces.unreachable_table"),
    )
    publish_markdown(
        "unzustellbar-zusammenfassung",
        summary_markdown(result, unreachable, german_date(local_day(moment))),
        say("flow.process_bounces.summary"),
    )
    return {**result, "unreachable": unreachable}
