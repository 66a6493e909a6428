"""Housekeeping: persisted Prefect run results are deleted after EFA_PREFECT_RESULTS_KEEP_DAYS."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from prefect import flow

from efa_rollout.prefect_api import prune_results
from efa_rollout.services.clock import local_day, resolve_as_of
from efa_rollout.settings import get_settings
from efa_rollout.texts import say
from flows._prefect import publish_markdown


@flow(name="aufraeumen", log_prints=True)
def housekeeping(as_of: datetime | None = None) -> dict[str, int]:
    """Delete the run results older than the kept days from Prefect's local result storage."""
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    now = resolve_as_of(as_of)
    days = get_settings().prefect_results_keep_days
    storage = Path(PREFECT_LOCAL_STORAGE_PATH.value())
    removed = prune_results(storage, older_than=now - timedelta(days=days))
    print(say("flow.housekeeping.log", removed=removed, days=days, storage=storage))
    title = say("flow.housekeeping.title", day=local_day(now))
    publish_markdown(
        "aufraeumen-summary",
        f"{title}\n\n{say('flow.housekeeping.removed', days=days, removed=removed)}",
        say("flow.housekeeping.summary"),
    )
    return {"removed": removed, "keep_days": days}
