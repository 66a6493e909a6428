"""Flow: deliver the outbox (SMTP, or .eml files when no server is configured).

The same work without Prefect: `efa mail deliver` (efa_rollout.mail.delivery.deliver).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger

from efa_rollout.domain.text import german_date
from efa_rollout.services.clock import local_day, resolve_as_of
from efa_rollout.texts import say
from flows._prefect import publish_markdown, publish_table, run_name
from tasks.delivery import deliver_batch

FLOW_NAME = "deliver-outbox"
#: Messages per task run: connections are reused within a batch.
BATCH_SIZE = 500
COLUMNS = ("zugestellt", "erneuter Versuch", "fehlgeschlagen", "ungewiss")


def _logger() -> Any:
    """The run logger inside a flow run, a plain logger when called as `.fn` (tests)."""
    from prefect.context import FlowRunContext

    return get_run_logger() if FlowRunContext.get() else logging.getLogger(__name__)


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    as_of = flow_run.parameters.get("as_of")
    if isinstance(as_of, str):
        as_of = datetime.fromisoformat(as_of)
    return run_name("outbox", "zustellung", as_of)


def merge_rows(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per campaign: sent / retrying / failed / unknown over all batches."""
    totals: dict[str, Counter[str]] = {}
    for batch in batches:
        for row in batch["rows"]:
            counts = totals.setdefault(row["Kampagne"], Counter())
            for column in COLUMNS:
                counts[column] += row[column]
    return [
        {"Kampagne": campaign, **{c: counts[c] for c in COLUMNS}}
        for campaign, counts in sorted(totals.items())
    ]


def summary_markdown(rows: list[dict[str, Any]], batches: list[dict[str, Any]], day: str) -> str:
    """The run's Markdown summary: totals, per campaign, and what needs the coordinator."""
    total = {c: sum(r[c] for r in rows) for c in COLUMNS}
    unknown = sum(b["recovered_unknown"] for b in batches) + total["ungewiss"]
    lines = [
        say("flow.deliver_outbox.title", day=day),
        "",
        say(
            "flow.deliver_outbox.handled",
            count=sum(b["attempted"] for b in batches),
            transport=batches[0]["transport"]
            if batches
            else say("flow.deliver_outbox.no_transport"),
        ),
        "",
        "| Kampagne | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
        *(f"| {r['Kampagne']} | " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows),
        f"| {say('flow.deliver_outbox.total')} | "
        + " | ".join(f"**{total[c]}**" for c in COLUMNS)
        + " |",
    ]
    if unknown:
        lines += ["", say("flow.deliver_outbox.unknown", count=unknown)]
    if total["fehlgeschlagen"]:
        lines += ["", say("flow.deliver_outbox.failed")]
    return "\n".join(lines) + "\n"


@flow(name=FLOW_NAME, flow_run_name=_flow_run_name, log_prints=False)
def deliver_outbox(as_of: datetime | None = None, limit: int | None = None) -> dict[str, Any]:
    """Deliver due mail in batches; a table and a summary as artifacts."""
    logger = _logger()
    batches: list[dict[str, Any]] = []
    while True:
        done = sum(b["attempted"] for b in batches)
        size = BATCH_SIZE if limit is None else min(BATCH_SIZE, limit - done)
        if size <= 0:
            break
        batch = deliver_batch(as_of, size)
        logger.info(batch["summary"])
        batches.append(batch)
        if batch["attempted"] < size:
            break
    rows = merge_rows(batches)
    day = german_date(local_day(resolve_as_of(as_of)))
    publish_table("postausgang", rows, say("flow.deliver_outbox.table"))
    publish_markdown(
        "postausgang-zusammenfassung",
        summary_markdown(rows, batches, day),
        say("flow.deliver_outbox.summary"),
    )
    result: dict[str, Any] = {"bearbeitet": sum(b["attempted"] for b in batches)}
    result.update({c: sum(r[c] for r in rows) for c in COLUMNS})
    result["nach Abbruch ungewiss"] = sum(b["recovered_unknown"] for b in batches)
    return result
