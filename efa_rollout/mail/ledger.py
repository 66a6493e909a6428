"""The delivery side of the outbox: claim, hand over, record outcomes, recover after crashes.

Every ledger function runs one short transaction of its own and commits it, so that the
ledger is always up to date before (claim, hand-over) and right after (outcome) each
SMTP exchange; `commit_group` does that for several connections' hand-overs and outcomes in
one transaction (group commit: each waits for the commit of its own record, as before).
The in-flight marker is committed before the content is written (it is requested when the
SMTP transaction starts, so its commit overlaps MAIL, RCPT and DATA), and a connection's next
marker is committed with or after its previous outcome: at most one message per connection
is ever between marker and outcome. States of a row while it is delivered:

    queued/retrying --claim--> sending --marker committed--> (in-flight attempt) --> sent
                                  |                                      |
                 crash before the marker: back to queued     crash after the marker: unknown

A row in `sending` whose claimer is dead (its process is gone, or its lease ran out) is
recovered: without an in-flight attempt the message provably never reached the server and
is queued again; with one it may or may not have, so it becomes `unknown` and is only
re-sent when the coordinator says so (`efa mail retry`), with the same Message-ID.

The claim and the group commit are here; the outcome of one attempt outside the common case
is `efa_rollout.mail.ledger_outcome`, recovery after a crash `efa_rollout.mail.ledger_recovery`,
the values passed around `efa_rollout.mail.ledger_state`. Their public names are importable
from this module too (imports go one way: this module → those → `ledger_state`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from efa_rollout.domain.bounces import verp_address
from efa_rollout.mail import ledger_sql
from efa_rollout.mail.ledger_outcome import record_outcome
from efa_rollout.mail.ledger_recovery import cancel_late, recover_stale_claims, release
from efa_rollout.mail.ledger_state import (
    ACTOR,
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    CLAIM_LEASE,
    DUE_STATUSES,
    FINAL_RECIPIENT_STATES,
    Bind,
    Claimed,
    Outcome,
    RecipientStates,
    Recovery,
    SendResult,
    attempt_values,
    backoff,
    begin,
    claim_is_abandoned,
    new_worker_id,
    pending_of,
    pending_recipients,
    plain_success,
)
from efa_rollout.mail.suppression import skip_suppressed, suppressed_reasons
from efa_rollout.settings import get_settings

__all__ = [
    "ACTOR",
    "BACKOFF_BASE_SECONDS",
    "BACKOFF_CAP_SECONDS",
    "CLAIM_LEASE",
    "DUE_STATUSES",
    "FINAL_RECIPIENT_STATES",
    "Bind",
    "Claimed",
    "Outcome",
    "RecipientStates",
    "Recovery",
    "SendResult",
    "backoff",
    "cancel_late",
    "claim_batch",
    "claim_is_abandoned",
    "commit_group",
    "new_worker_id",
    "pending_recipients",
    "plain_success",
    "record_outcome",
    "recover_stale_claims",
    "release",
]

_CLAIMED_COLUMNS = (
    "id",
    "message_id",
    "campaign_id",
    "ags",
    "kind",
    "is_test",
    "sender",
    "recipients",
    "cc",
    "raw",
    "recipient_status",
    "meta",
)


def _claimed(row: dict[str, Any]) -> Claimed:
    """A Claimed from the _CLAIMED_COLUMNS of a claimed row."""
    states = dict(row["recipient_status"] or {})
    sender = row["sender"]
    return Claimed(
        id=row["id"],
        message_id=row["message_id"],
        campaign_id=row["campaign_id"],
        ags=row["ags"],
        kind=row["kind"],
        is_test=row["is_test"],
        sender=verp_address(sender, row["id"]) if get_settings().bounce_verp else sender,
        pending=tuple(pending_of(row["recipients"], row["cc"], states)),
        raw=row["raw"],
        recipient_status=states,
        link=(row["meta"] or {}).get("link"),
    )


def claim_batch(
    bind: Bind,
    *,
    worker: str,
    now: datetime,
    size: int,
    only_ids: list[int] | None = None,
) -> list[Claimed]:
    """Claim up to SIZE due rows for WORKER (SKIP LOCKED on PostgreSQL) and commit.

    On SQLite the claim and its suppression check are one transaction. On PostgreSQL the claim
    is one statement in autocommit and the check a read after it (two round trips instead of
    four); only when an address is suppressed are those rows changed, in a transaction of their
    own. A crash in between leaves claimed rows without a hand-over marker: recovery queues them
    again, as after any crash before the hand-over.
    """
    if size <= 0:
        return []
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            return claim_batch(connection, worker=worker, now=now, size=size, only_ids=only_ids)
    if not ledger_sql.is_postgres(bind):
        with begin(bind) as connection:
            claimed = _claim(connection, worker, now, size, only_ids)
            # An address suppressed after queueing (or before a retry) is left out here.
            return skip_suppressed(connection, claimed, now=now)
    with ledger_sql.autocommit(bind):
        claimed = _claim(bind, worker, now, size, only_ids)
        if not suppressed_reasons(bind, [a for c in claimed for a in c.pending]):
            return claimed
    with begin(bind) as connection:
        return skip_suppressed(connection, claimed, now=now)


def _claim(
    connection: Connection, worker: str, now: datetime, size: int, only_ids: list[int] | None
) -> list[Claimed]:
    rows = ledger_sql.claim(
        connection,
        columns=_CLAIMED_COLUMNS,
        worker=worker,
        now=now,
        size=size,
        only_ids=only_ids,
    )
    return [_claimed(row) for row in sorted(rows, key=lambda row: row["id"])]


def commit_group(
    bind: Bind,
    *,
    worker: str,
    now: datetime,
    handovers: list[Claimed],
    successes: list[tuple[Claimed, SendResult, int | None]],
) -> tuple[dict[int, int], set[int]]:
    """Hand-over markers and plain successes of several connections in one transaction.

    What each caller waits for is committed before it goes on, exactly as with one
    transaction per message (group commit): a hand-over marker before the content is
    written, an outcome before the row counts as done. Returns the attempt id per handed-over
    row (a row missing: its claim was lost) and the ids recorded as sent; successes not
    recorded here (row no longer ours) go through `record_outcome`.
    """
    if not handovers and not successes:
        return {}, set()
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            return commit_group(
                connection, worker=worker, now=now, handovers=handovers, successes=successes
            )
    recorded: list[ledger_sql.Success] = []
    logged: list[ledger_sql.Success] = []
    for claimed, result, attempt_id in successes:
        merged = plain_success(claimed, result)
        assert merged is not None, "only plain successes are group-committed"
        text = attempt_values(result, now)["smtp_text"]
        item = (claimed.id, merged, attempt_id, result.code, text)
        (recorded if attempt_id is not None else logged).append(item)
    return ledger_sql.commit_group(
        bind,
        worker=worker,
        now=now,
        handed=[c.id for c in handovers],
        successes=recorded,
        logged=logged,
    )
