"""The tick's and go-live's artifacts around the one advance loop (services.orchestration)."""

from __future__ import annotations

from datetime import datetime

from efa_rollout.db import session_scope
from efa_rollout.domain.stages import Stage
from efa_rollout.services import lookup, orchestration
from efa_rollout.services.clock import local_day
from efa_rollout.services.progression import BatchResult
from efa_rollout.texts import say, table
from flows._prefect import (
    Progress,
    publish_markdown,
    publish_table,
    stage_table,
    tag_run_with_campaign,
)
from tasks.runner import TaskRunner


def advance_campaigns(
    campaign: str | None, now: datetime, *, action: str, go_live: bool
) -> dict[str, dict[str, object]]:
    """Advance CAMPAIGN (or every running one) through the task runner; figures per campaign."""
    tag_run_with_campaign(campaign)
    bars: dict[str, Progress] = {}

    def progress(campaign_id: str, done: int, total: int) -> None:
        # The first report comes after the first batch: a campaign done in one batch (up to
        # BATCH_SIZE municipalities) would get a bar created and set to 100 % at its end, two API
        # calls that show nothing the table and summary do not. Only work still to do gets one.
        if campaign_id not in bars:
            if done >= total:
                return
            bars[campaign_id] = Progress(
                f"{campaign_id}-{action}-progress", f"{campaign_id}: {action}"
            )
        bars[campaign_id].update(done, total)

    return orchestration.advance_campaigns(
        campaign,
        now,
        go_live=go_live,
        runner=TaskRunner(),
        progress=progress,
        on_campaign=lambda advanced: _publish(advanced.campaign_id, action, now, advanced.result),
    )


def _publish(campaign_id: str, action: str, now: datetime, result: BatchResult) -> None:
    """Table (municipality × stage, with what changed) and a Markdown summary."""
    changed = {c.ags: c for c in result.changes}
    with session_scope() as session:
        rows = lookup.enrolment_stages(session, campaign_id)
        counts = lookup.stage_counts(session, campaign_id)
    column = table("flow.advance.columns")
    stages = [
        {
            column["ags"]: ags,
            column["name"]: name,
            column["stage"]: Stage(stage).label,
            column["status"]: status,
            column["change"]: (
                say(
                    "flow.advance.change",
                    before=Stage(changed[ags].from_stage).label,
                    after=Stage(changed[ags].to_stage).label,
                    reason=changed[ags].reason,
                )
                if ags in changed
                else ""
            ),
        }
        for ags, name, stage, status in rows
    ]
    day = local_day(now)
    publish_table(
        f"{campaign_id}-{action}-stufen",
        stage_table(stages),
        say("flow.advance.stages", campaign=campaign_id, action=action, day=day),
    )
    lines = [
        say("flow.advance.title", campaign=campaign_id, action=action, day=day),
        "",
        say("flow.advance.municipalities", count=len(rows)),
        say("flow.advance.changes", count=len(result.changes)),
        say("flow.advance.queued", count=result.mails_queued),
        say("flow.advance.blocked", count=len(result.blocked)),
        "",
        say("flow.advance.stage_head"),
        "|---|---:|",
        *[
            say("flow.advance.stage_row", stage=s.label, count=counts.get(s.value, 0))
            for s in Stage
            if counts.get(s.value)
        ],
    ]
    publish_markdown(
        f"{campaign_id}-{action}-summary",
        "\n".join(lines),
        say("flow.advance.summary", action=action),
    )
