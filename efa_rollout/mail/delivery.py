"""Deliver the outbox: a small pool of reused SMTP connections, or .eml files in a folder.

`deliver()` is the plain entry point (CLI `efa mail deliver`, Prefect task, tests). It is
safe to run after a crash and next to another delivery process: rows are claimed in small
committed batches, outcomes are committed right after each message, and abandoned claims
are recovered first (see `efa_rollout.mail.ledger`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from efa_rollout.mail import ledger
from efa_rollout.mail.ledger import Claimed, SendResult
from efa_rollout.mail.personal_link import (
    LinkSecretError,
    content_to_send,
    count_placeholders,
    load_link_secret,
)
from efa_rollout.private_files import write_private
from efa_rollout.settings import Settings, get_settings

T = TypeVar("T")

#: Rows one connection claims at a time: small, so a crash strands few claims.
CLAIM_BATCH = 10
STATUS_LABELS = {
    "sent": "zugestellt",
    "retrying": "erneuter Versuch",
    "failed_permanently": "fehlgeschlagen",
    "unknown": "ungewiss",
    "queued": "wartend",
    "cancelled": "storniert",
    "sending": "in Zustellung",
}


#: Why a stored mail with a link placeholder but without its link data is not sent.
MISSING_LINK = (
    "Der persönliche Link kann nicht eingesetzt werden: zur gespeicherten Nachricht fehlen die "
    "Link-Daten (meta.link). Die Nachricht wurde nicht versandt."
)


@dataclass
class DeliveryReport:
    """What one delivery run did."""

    transport: str = "smtp"
    attempted: int = 0
    by_campaign: dict[str, Counter[str]] = field(default_factory=dict)
    recovered_requeued: int = 0
    recovered_unknown: int = 0
    cancelled_late: int = 0
    released: int = 0
    seconds: float = 0.0

    def count(self, campaign: str, status: str) -> None:
        """Count one message of CAMPAIGN ending the attempt in STATUS."""
        self.attempted += 1
        self.by_campaign.setdefault(campaign, Counter())[status] += 1

    def total(self, status: str) -> int:
        """Messages that ended in STATUS, over all campaigns."""
        return sum(c[status] for c in self.by_campaign.values())

    def rows(self) -> list[dict[str, Any]]:
        """One row per campaign: sent / retrying / failed / unknown."""
        return [
            {
                "Kampagne": campaign,
                "zugestellt": counts["sent"],
                "erneuter Versuch": counts["retrying"],
                "fehlgeschlagen": counts["failed_permanently"],
                "ungewiss": counts["unknown"],
            }
            for campaign, counts in sorted(self.by_campaign.items())
        ]

    def summary(self) -> str:
        """One German sentence for the console and the flow's Markdown artifact."""
        rate = self.attempted / self.seconds if self.seconds > 0 else 0.0
        parts = [
            f"{self.attempted} Nachrichten bearbeitet ({self.transport}, {self.seconds:.1f} s, "
            f"{rate:.0f}/s): {self.total('sent')} zugestellt, {self.total('retrying')} erneut "
            f"zu versuchen, {self.total('failed_permanently')} fehlgeschlagen, "
            f"{self.total('unknown')} ungewiss."
        ]
        if self.recovered_requeued or self.recovered_unknown:
            parts.append(
                f"Nach Abbruch eines früheren Laufs: {self.recovered_requeued} wieder eingereiht, "
                f"{self.recovered_unknown} ungewiss (prüfen, dann »efa mail retry«)."
            )
        if self.cancelled_late:
            parts.append(f"{self.cancelled_late} zu spät und deshalb storniert.")
        return " ".join(parts)


class _Clock:
    """Real time, shifted so that it starts at AS_OF (for simulations and tests)."""

    def __init__(self, as_of: datetime | None) -> None:
        self.offset = (as_of - datetime.now(UTC)) if as_of else None

    def __call__(self) -> datetime:
        now = datetime.now(UTC)
        return now + self.offset if self.offset is not None else now


class _Run:
    """Shared state of one delivery run: ledger access, limit, rate limit, report."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        clock: _Clock,
        limit: int | None,
        only_ids: list[int] | None,
        report: DeliveryReport,
        rate_limiter: Any = None,
    ) -> None:
        self.rate_limiter = rate_limiter
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.remaining = limit
        self.only_ids = only_ids
        self.report = report
        self.worker = ledger.new_worker_id()
        self.relay_down: SendResult | None = None
        # SQLite works in this process: its short transactions run on the event loop itself,
        # which costs less than handing each one to a thread and waking the loop for its
        # result. PostgreSQL's round trips would stall the loop: they run in the ledger thread.
        self._inline = engine.dialect.name == "sqlite"
        self._db = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        self._connection: Connection | None = None
        self._link_secret: bytes | None = None
        # Group commit: what the connections wait for, gathered while the ledger thread is busy.
        self._handovers: list[tuple[Claimed, asyncio.Future[int | None]]] = []
        self._successes: list[tuple[Claimed, SendResult, int | None, asyncio.Future[str]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def prepare(self, claimed: Claimed) -> Claimed | SendResult:
        """CLAIMED with its personal link put in, or the failure when that is impossible."""
        if not claimed.link:
            if count_placeholders(claimed.raw):  # the link's meta was lost: never send a stand-in
                return SendResult("failed", "link", None, MISSING_LINK)
            return claimed
        try:
            if self._link_secret is None:
                self._link_secret = load_link_secret(self.settings.data_dir, create=False)
            content = content_to_send(
                claimed.raw, {"link": claimed.link}, claimed.message_id, self._link_secret
            )
        except LinkSecretError as error:
            return SendResult("failed", "link", None, str(error))
        return dataclasses.replace(claimed, content=content)

    def _call(self, fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
        """In the database thread: FN on the run's own connection (opened on first use)."""
        if self._connection is None:
            self._connection = self.engine.connect()
        return fn(self._connection, **kwargs)

    async def db(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """Run a ledger function on the run's connection, one transaction each, one at a time."""
        if self._inline:
            return self._call(fn, kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, self._call, fn, kwargs)

    def close(self) -> None:
        """Close the connection (in the thread that used it) and stop the thread."""
        if self._connection is not None:
            if self._inline:
                self._connection.close()
            else:
                self._db.submit(self._connection.close).result()
        self._db.shutdown(wait=True)

    async def claim(self) -> list[Claimed]:
        """The next small batch for one connection (empty when done)."""
        if self.relay_down is not None:
            return []
        size = CLAIM_BATCH if self.remaining is None else min(CLAIM_BATCH, self.remaining)
        if self.remaining is not None:
            self.remaining -= size  # reserve before awaiting: the other connections claim too
        batch = await self.db(
            ledger.claim_batch,
            worker=self.worker,
            now=self.clock(),
            size=size,
            only_ids=self.only_ids,
        )
        if self.remaining is not None:
            self.remaining += size - len(batch)
        return batch

    async def record(self, claimed: Claimed, result: SendResult, attempt_id: int | None) -> None:
        """Commit the outcome of one message and count it."""
        await self.record_soon(claimed, result, attempt_id)

    def record_soon(
        self, claimed: Claimed, result: SendResult, attempt_id: int | None
    ) -> asyncio.Future[None]:
        """Queue the outcome for the next group commit now; the future is done once committed.

        Queued synchronously, so that a connection's next hand-over marker is always committed
        with or after this outcome (at most one message per connection in flight).
        """
        if ledger.plain_success(claimed, result) is not None:
            future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._successes.append((claimed, result, attempt_id, future))
            self._schedule()
            return asyncio.ensure_future(self._count(claimed, result, future))
        return asyncio.ensure_future(
            self._count(claimed, result, self._record_one(claimed, result, attempt_id))
        )

    async def _count(self, claimed: Claimed, result: SendResult, status: Awaitable[str]) -> None:
        outcome = await status
        if result.outcome != "skipped":
            label = claimed.campaign_id or ("(Test)" if claimed.is_test else "(ohne Kampagne)")
            self.report.count(label, outcome)

    async def _record_one(
        self, claimed: Claimed, result: SendResult, attempt_id: int | None
    ) -> str:
        return await self.db(
            ledger.record_outcome,
            claimed=claimed,
            worker=self.worker,
            result=result,
            now=self.clock(),
            attempt_id=attempt_id,
            settings=self.settings,
        )

    async def handover(self, claimed: Claimed) -> int | None:
        """Commit the hand-over marker of CLAIMED; None if the claim was lost."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._handovers.append((claimed, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        """Commit what has gathered, as one transaction, until nothing is waiting."""
        # One pass of the loop first: a connection's next hand-over (a task started right after
        # its previous outcome was queued) then joins that outcome's commit instead of having
        # a commit of its own.
        await asyncio.sleep(0)
        while self._handovers or self._successes:
            handovers, self._handovers = self._handovers, []
            successes, self._successes = self._successes, []
            try:
                attempt_ids, sent = await self.db(
                    ledger.commit_group,
                    worker=self.worker,
                    now=self.clock(),
                    handovers=[c for c, _ in handovers],
                    successes=[(c, r, a) for c, r, a, _ in successes],
                )
            except Exception as error:
                waiting = [f for _, f in handovers] + [s[-1] for s in successes]
                for future in waiting:
                    if not future.done():
                        future.set_exception(error)
                continue
            for claimed, future in handovers:
                if not future.done():
                    future.set_result(attempt_ids.get(claimed.id))
            for claimed, result, attempt_id, future in successes:
                if claimed.id in sent:
                    status = "sent"
                else:  # no longer ours: the careful path decides
                    try:
                        status = await self._record_one(claimed, result, attempt_id)
                    except Exception as error:
                        if not future.done():
                            future.set_exception(error)
                        continue
                if not future.done():
                    future.set_result(status)


async def _smtp_worker(run: _Run, bucket: Any) -> None:
    """One connection: claim small batches and send them over the same connection."""
    from efa_rollout.mail.transport import SmtpConnection, parse_smtp_url, send_message

    assert run.settings.smtp_url is not None
    config = parse_smtp_url(
        run.settings.smtp_url.get_secret_value(), timeout=run.settings.smtp_timeout_seconds
    )
    connection = SmtpConnection(config, local_hostname=_helo_name(run.settings))
    batch: list[Claimed] = []
    # The previous message's outcome, committing while this connection starts the next one
    # (its marker is committed with or after that outcome; see _Run.record_soon).
    recording: asyncio.Future[None] | None = None
    try:
        while batch := await run.claim():
            while batch:
                claimed = batch[0]
                if run.relay_down is not None:
                    await run.record(claimed, run.relay_down, None)
                    batch.pop(0)
                    continue
                prepared = run.prepare(claimed)
                if isinstance(prepared, SendResult):
                    await run.record(claimed, prepared, None)
                    batch.pop(0)
                    continue
                claimed = prepared
                await bucket.acquire()
                result, attempt_id = await send_message(
                    connection, claimed, partial(run.handover, claimed)
                )
                if recording is not None:
                    await recording
                recording = run.record_soon(claimed, result, attempt_id)
                batch.pop(0)
                if result.outcome != "sent" or result.drop_connection:
                    await recording  # the careful path: decided before the next message
                if result.stage == "connect":
                    if result.code is None:
                        # Unreachable (refused, timeout): nobody gets through this run.
                        run.relay_down = result
                    else:
                        # The relay answered but refused this connection (e.g. too many
                        # connections, AUTH): the other connections carry on without it.
                        return
            if recording is not None:
                await recording
                recording = None
    finally:
        if recording is not None and not recording.done():
            recording.cancel()  # interrupted: the ledger thread still commits what it has
        if batch:  # interrupted: give back what was not handed over
            run.report.released += await run.db(
                ledger.release, ids=[c.id for c in batch], worker=run.worker
            )
        await connection.close()


def _helo_name(settings: Settings) -> str:
    from efa_rollout.mail.message import punycode_domain

    return punycode_domain(settings.effective_message_id_domain)


def eml_path(folder: Path, claimed: Claimed) -> Path:
    """Where the .eml of CLAIMED goes: stable, so a re-run overwrites instead of duplicating."""
    local = re.sub(r"[^A-Za-z0-9._-]+", "_", claimed.message_id.strip("<>"))[:150]
    return folder / f"{claimed.id:08d}_{local}.eml"


def write_eml(folder: Path, claimed: Claimed) -> Path:
    """Write CLAIMED atomically (temp file, fsync, os.replace), readable only by us (0600)."""
    return write_private(eml_path(folder, claimed), claimed.payload, fsync=True)


async def _folder_worker(run: _Run) -> None:
    """Deliver into .eml files: the same ledger, no network."""
    folder = run.settings.effective_mail_dir
    while batch := await run.claim():
        for claimed in batch:
            prepared = run.prepare(claimed)
            if isinstance(prepared, SendResult):
                await run.record(claimed, prepared, None)
                continue
            path = await asyncio.to_thread(write_eml, folder, prepared)
            recipients = {
                a: {"status": "sent", "code": None, "text": str(path)} for a in claimed.pending
            }
            result = SendResult("sent", "file", None, f"gespeichert: {path.name}", recipients)
            await run.record(claimed, result, None)


async def _deliver_async(run: _Run) -> None:
    now = run.clock()
    recovery = await run.db(ledger.recover_stale_claims, now=now)
    run.report.recovered_requeued = recovery.requeued
    run.report.recovered_unknown = recovery.unknown
    run.report.cancelled_late = await run.db(ledger.cancel_late, now=now)
    if not run.settings.smtp_enabled:
        run.report.transport = f"Ordner {run.settings.effective_mail_dir}"
        await _folder_worker(run)
        return
    from efa_rollout.mail.transport import TokenBucket

    pool = run.settings.smtp_pool_size
    bucket = run.rate_limiter or TokenBucket(run.settings.smtp_rate_per_second, capacity=pool)
    workers = [asyncio.create_task(_smtp_worker(run, bucket)) for _ in range(pool)]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def deliver(
    *,
    now: datetime | None = None,
    limit: int | None = None,
    only_ids: Sequence[int] | None = None,
    engine: Engine | None = None,
    settings: Settings | None = None,
    rate_limiter: Any = None,
) -> DeliveryReport:
    """Deliver due outbox messages (at most LIMIT); NOW shifts the clock for simulations.

    RATE_LIMITER (anything with `async acquire()`) replaces the in-process rate limit, e.g. one
    shared by every delivery run; each SMTP send acquires it once.
    """
    from efa_rollout.db import get_engine

    started = time.perf_counter()
    report = DeliveryReport()
    run = _Run(
        engine=engine or get_engine(),
        settings=settings or get_settings(),
        clock=_Clock(now),
        limit=limit,
        only_ids=list(only_ids) if only_ids is not None else None,
        report=report,
        rate_limiter=rate_limiter,
    )
    try:
        _run_coroutine(_deliver_async(run))
    finally:
        run.close()
        report.seconds = time.perf_counter() - started
    return report


def _run_coroutine(coroutine: Any) -> None:
    """asyncio.run, also from a thread that already runs an event loop (e.g. in Prefect)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as error:  # re-raised in the caller's thread
            errors.append(error)

    thread = threading.Thread(target=target, name="efa-mail-delivery")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
