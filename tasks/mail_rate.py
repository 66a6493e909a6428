"""One mail rate for every delivery run: a Prefect global concurrency limit with slot decay."""

from __future__ import annotations

from efa_rollout.prefect_api import SMTP_RATE_LIMIT


class SharedRate:
    """EFA_SMTP_RATE_PER_SECOND across concurrent runs: one decaying slot per message."""

    def __init__(self, name: str = SMTP_RATE_LIMIT) -> None:
        self.name = name

    async def acquire(self) -> None:
        """Wait until the server's limit admits one more message."""
        from prefect.concurrency.asyncio import rate_limit

        await rate_limit(self.name, occupy=1, strict=True)


def shared_rate_limiter() -> SharedRate | None:
    """The server's limit inside a flow run against a server that has it (`efa up`/`efa serve`
    create it); None otherwise, so delivery keeps its in-process limit."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.exceptions import ObjectNotFound

    if FlowRunContext.get() is None:
        return None
    try:
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(SMTP_RATE_LIMIT)
    except ObjectNotFound:
        return None
    if not limit.active or not limit.slot_decay_per_second:
        return None
    from prefect import get_run_logger

    get_run_logger().info(
        "Versandrate über das globale Limit »%s«: %s Mails/s für alle Zustellläufe zusammen.",
        SMTP_RATE_LIMIT,
        limit.slot_decay_per_second,
    )
    return SharedRate()
