"""The delivery side of the outbox: claim, hand over, record outcomes, recover after crashes.

Every function here runs one short transaction of its own and commits it, so that the
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
"""

from __future__ import annotations

import os
import random
import secrets
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, bindparam, func, insert, update
from sqlmodel import Session, col, select

from efa_rollout.db import session_scope
from efa_rollout.domain.audit import EventKind
from efa_rollout.domain.bounces import verp_address
from efa_rollout.mail import ledger_sql
from efa_rollout.mail.message import normalize_address
from efa_rollout.mail.suppression import skip_suppressed
from efa_rollout.settings import Settings, get_settings
from models import Contact, DeliveryAttempt, Event, OutboxMessage, table_of

#: A claim older than this is considered abandoned even if its process cannot be checked.
CLAIM_LEASE = timedelta(minutes=15)
DUE_STATUSES = ("queued", "retrying")
BACKOFF_BASE_SECONDS = 60.0
BACKOFF_CAP_SECONDS = 3600.0
ACTOR = "zustellung"
#: "suppressed": left out because the address is on the suppression list (mail.suppression).
FINAL_RECIPIENT_STATES = frozenset({"sent", "refused", "suppressed"})

_OUTBOX = table_of(OutboxMessage)
_ATTEMPT = table_of(DeliveryAttempt)
_OURS = (
    (_OUTBOX.c.id == bindparam("row_id"))
    & (_OUTBOX.c.status == "sending")
    & (_OUTBOX.c.claimed_by == bindparam("worker"))
)
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


# Built once (SQLAlchemy then only looks them up in its cache); the claim and the group
# commit, the hot path, are plain DB-API statements (efa_rollout.mail.ledger_sql).
_MARK_SENT = (
    update(_OUTBOX)
    .where(_OURS)
    .values(
        status="sent",
        sent_at=func.coalesce(_OUTBOX.c.sent_at, bindparam("now", type_=_OUTBOX.c.sent_at.type)),
        next_attempt_at=None,
        attempts=_OUTBOX.c.attempts + 1,
        claimed_by=None,
        claimed_at=None,
        recipient_status=bindparam("recipient_status"),
        last_error=None,
    )
)
_FINISH_ATTEMPT = (
    update(_ATTEMPT)
    .where(_ATTEMPT.c.id == bindparam("attempt_id"))
    .values(
        at=bindparam("at"),
        outcome=bindparam("outcome"),
        smtp_code=bindparam("smtp_code"),
        smtp_text=bindparam("smtp_text"),
    )
)

#: Where ledger functions run: an engine (a connection per call) or one held connection.
Bind = Engine | Connection

Outcome = Literal["sent", "retry", "failed", "unknown", "skipped"]
#: Per envelope address: {"status": sent/refused/deferred/unknown, "code": int|None, "text": str}
RecipientStates = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Claimed:
    """A claimed outbox row, detached from the database: what a sender needs."""

    id: int
    message_id: str
    campaign_id: str | None
    ags: str | None
    kind: str
    is_test: bool
    sender: str
    pending: tuple[str, ...]
    raw: bytes
    recipient_status: RecipientStates = field(default_factory=dict)
    #: Nonce and hash of the personal link's token (see efa_rollout.mail.personal_link).
    link: dict[str, str] | None = None
    #: What is sent: RAW with the personal link put in (set at hand-over preparation).
    content: bytes | None = None

    @property
    def payload(self) -> bytes:
        """The bytes that go to the server or into the .eml file."""
        return self.raw if self.content is None else self.content


@dataclass
class SendResult:
    """What happened to one message in one attempt."""

    outcome: Outcome
    stage: str
    code: int | None = None
    text: str = ""
    recipients: RecipientStates = field(default_factory=dict)
    drop_connection: bool = False


@dataclass
class Recovery:
    """Stale claims found at the start of a delivery run."""

    requeued: int = 0
    unknown: int = 0
    cancelled_late: int = 0


@contextmanager
def _begin(bind: Bind) -> Iterator[Connection]:
    """One committed transaction on BIND."""
    if isinstance(bind, Engine):
        with bind.begin() as connection:
            yield connection
    else:
        with bind.begin():
            yield bind


@contextmanager
def _session(bind: Bind) -> Iterator[Session]:
    """A session committing on success, on an engine or on a held connection."""
    if isinstance(bind, Engine):
        with session_scope(bind) as session:
            yield session
        return
    with Session(bind=bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def new_worker_id() -> str:
    """'host:pid:random' — who holds a claim, checkable for liveness on the same host."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_is_abandoned(
    claimed_by: str | None, claimed_at: datetime | None, now: datetime, lease: timedelta
) -> bool:
    """True when the claimer is provably gone (same host, process dead) or its lease ran out."""
    if claimed_at is None or now - claimed_at > lease:
        return True
    host, _, rest = (claimed_by or "").partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname()[:80] or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    return pid != os.getpid() and not _pid_alive(pid)


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with jitter: about 1, 2, 4, ... minutes, at most one hour."""
    delay = min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS)
    return timedelta(seconds=delay * random.uniform(0.5, 1.0))


def pending_recipients(row: OutboxMessage) -> list[str]:
    """Envelope recipients that still need the message (not sent, not refused for good)."""
    return _pending(row.recipients, row.cc, row.recipient_status or {})


def _pending(to: list[str], cc: list[str], states: RecipientStates) -> list[str]:
    done = {a for a, state in states.items() if state.get("status") in FINAL_RECIPIENT_STATES}
    result: list[str] = []
    for address in [*to, *cc]:
        if address not in done and address not in result:
            result.append(address)
    return result


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
        pending=tuple(_pending(row["recipients"], row["cc"], states)),
        raw=row["raw"],
        recipient_status=states,
        link=(row["meta"] or {}).get("link"),
    )


def cancel_late(bind: Bind, *, now: datetime) -> int:
    """Cancel due rows whose not_after has passed: a late reminder is worse than none."""
    with _session(bind) as session:
        result = session.exec(  # exec(): typed as a CursorResult, which has rowcount
            update(OutboxMessage)
            .where(
                col(OutboxMessage.status).in_(DUE_STATUSES),
                col(OutboxMessage.not_after).is_not(None),
                col(OutboxMessage.not_after) < now,
            )
            .values(
                status="cancelled",
                next_attempt_at=None,
                last_error="Nicht versandt: spätester Versandzeitpunkt überschritten.",
            )
        )
        return result.rowcount or 0


def recover_stale_claims(bind: Bind, *, now: datetime, lease: timedelta = CLAIM_LEASE) -> Recovery:
    """Requeue abandoned claims never handed over; mark those caught mid-hand-over unknown."""
    recovery = Recovery()
    with _session(bind) as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.status == "sending")).all()
        for row in rows:
            if not claim_is_abandoned(row.claimed_by, row.claimed_at, now, lease):
                continue
            in_flight = session.exec(
                select(DeliveryAttempt).where(
                    DeliveryAttempt.outbox_id == row.id, DeliveryAttempt.outcome == "in_flight"
                )
            ).all()
            if in_flight:
                _mark_unknown_after_crash(session, row, in_flight, now)
                recovery.unknown += 1
            else:
                row.status = "retrying" if row.attempts else "queued"
                row.next_attempt_at = now
                row.claimed_by = row.claimed_at = None
                session.add(row)
                recovery.requeued += 1
    return recovery


def _mark_unknown_after_crash(
    session: Session, row: OutboxMessage, in_flight: Sequence[DeliveryAttempt], now: datetime
) -> None:
    text = (
        "Zustellprozess während der Übergabe an den Mailserver abgebrochen; ob der Server "
        "die Nachricht angenommen hat, ist ungewiss."
    )
    for attempt in in_flight:
        attempt.outcome = "unknown"
        attempt.smtp_text = text
        session.add(attempt)
    status = dict(row.recipient_status or {})
    for address in pending_recipients(row):
        status[address] = {"status": "unknown", "code": None, "text": text}
    row.recipient_status = status
    row.status = "unknown"
    row.attempts += 1
    row.next_attempt_at = None
    row.claimed_by = row.claimed_at = None
    row.last_error = f"{text} Erneut senden mit: efa mail retry {row.id}"
    session.add(row)


def claim_batch(
    bind: Bind,
    *,
    worker: str,
    now: datetime,
    size: int,
    only_ids: list[int] | None = None,
) -> list[Claimed]:
    """Claim up to SIZE due rows for WORKER (SKIP LOCKED on PostgreSQL) and commit."""
    if size <= 0:
        return []
    with _begin(bind) as connection:
        rows = ledger_sql.claim(
            connection,
            columns=_CLAIMED_COLUMNS,
            worker=worker,
            now=now,
            size=size,
            only_ids=only_ids,
        )
        claimed = [_claimed(row) for row in sorted(rows, key=lambda row: row["id"])]
        # An address suppressed after queueing (or before a retry) is left out here.
        return skip_suppressed(connection, claimed, now=now)


def release(bind: Bind, *, ids: list[int], worker: str) -> int:
    """Give back claimed rows that were not handed over (orderly shutdown, interruption)."""
    if not ids:
        return 0
    with _session(bind) as session:
        rows = session.exec(
            select(OutboxMessage).where(
                col(OutboxMessage.id).in_(ids),
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_by == worker,
            )
        ).all()
        released = 0
        for row in rows:
            in_flight = session.exec(
                select(DeliveryAttempt.id).where(
                    DeliveryAttempt.outbox_id == row.id, DeliveryAttempt.outcome == "in_flight"
                )
            ).first()
            if in_flight is not None:
                continue  # handed over: the next run's recovery marks it unknown
            row.status = "retrying" if row.attempts else "queued"
            row.claimed_by = row.claimed_at = None
            session.add(row)
            released += 1
        return released


def record_outcome(
    bind: Bind,
    *,
    claimed: Claimed,
    worker: str,
    result: SendResult,
    now: datetime,
    attempt_id: int | None,
    settings: Settings,
) -> str:
    """Store one attempt's outcome (attempt log, row status, contact flags); the new status."""
    if _record_plain_success(
        bind, claimed=claimed, worker=worker, result=result, now=now, attempt_id=attempt_id
    ):
        return "sent"
    with _session(bind) as session:
        row = session.get(OutboxMessage, claimed.id)
        assert row is not None
        _log_attempt(session, claimed.id, worker, result, now, attempt_id)
        if result.outcome == "skipped":
            return row.status
        still_ours = row.status == "sending" and row.claimed_by == worker
        late_success = row.status == "unknown" and result.outcome == "sent"
        if not (still_ours or late_success):
            return row.status  # someone else took the row over; their decision stands
        merged = {**(row.recipient_status or {}), **result.recipients}
        row.recipient_status = merged
        row.attempts += 1
        row.claimed_by = row.claimed_at = None
        _apply_status(row, result, now, settings)
        session.add(row)
        refused = [a for a in result.recipients if result.recipients[a]["status"] == "refused"]
        if refused:
            _flag_contacts(session, row, refused, result, now)
        return row.status


def plain_success(claimed: Claimed, result: SendResult) -> RecipientStates | None:
    """The merged recipient states when RESULT is the common case (sent to everyone), else None."""
    if result.outcome != "sent":
        return None
    merged = {**claimed.recipient_status, **result.recipients}
    if any(a not in merged for a in claimed.pending):
        return None
    if not all(state.get("status") == "sent" for state in merged.values()):
        return None
    return merged


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
        text = _attempt_values(result, now)["smtp_text"]
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


def _attempt_values(result: SendResult, now: datetime) -> dict[str, Any]:
    return {
        "at": now,
        "outcome": result.outcome,
        "smtp_code": result.code,
        "smtp_text": f"[{result.stage}] {result.text}"[:1000],
    }


def _record_plain_success(
    bind: Bind,
    *,
    claimed: Claimed,
    worker: str,
    result: SendResult,
    now: datetime,
    attempt_id: int | None,
) -> bool:
    """The common case in one short statement pair: accepted for everyone, row still ours."""
    merged = plain_success(claimed, result)
    if merged is None:
        return False
    with _begin(bind) as connection:
        parameters = {"row_id": claimed.id, "worker": worker, "now": now}
        updated = connection.execute(_MARK_SENT, {**parameters, "recipient_status": merged})
        if not updated.rowcount:
            return False
        values = _attempt_values(result, now)
        if attempt_id is None:
            connection.execute(
                insert(_ATTEMPT).values(outbox_id=claimed.id, worker=worker, **values)
            )
        else:
            connection.execute(_FINISH_ATTEMPT, {"attempt_id": attempt_id, **values})
    return True


def _log_attempt(
    session: Session,
    outbox_id: int,
    worker: str,
    result: SendResult,
    now: datetime,
    attempt_id: int | None,
) -> None:
    values = _attempt_values(result, now)
    if attempt_id is None:
        session.add(DeliveryAttempt(outbox_id=outbox_id, worker=worker, **values))
    else:
        session.execute(
            update(DeliveryAttempt).where(col(DeliveryAttempt.id) == attempt_id).values(**values)
        )
    for address, state in result.recipients.items():
        if state["status"] in ("refused", "deferred"):
            session.add(
                DeliveryAttempt(
                    outbox_id=outbox_id,
                    at=now,
                    worker=worker,
                    outcome="failed" if state["status"] == "refused" else "retry",
                    smtp_code=state.get("code"),
                    smtp_text=str(state.get("text") or "")[:1000],
                    recipient=address,
                )
            )


def _age_start(row: OutboxMessage) -> datetime:
    """When the retry clock started: queueing, or the coordinator's last manual retry."""
    manual = (row.meta or {}).get("manual_retry_at")
    return max(row.queued_at, datetime.fromisoformat(manual)) if manual else row.queued_at


def _apply_status(
    row: OutboxMessage, result: SendResult, now: datetime, settings: Settings
) -> None:
    reply = f"{result.code} {result.text}".strip() if result.code else result.text
    if result.outcome == "unknown":
        row.status, row.next_attempt_at = "unknown", None
        row.last_error = f"Zustellung ungewiss ({result.stage}): {reply}"[:1000]
        return
    if result.stage == "link":
        row.status, row.next_attempt_at = "failed_permanently", None
        row.last_error = result.text[:1000]
        return
    if result.outcome == "failed" and result.stage != "rcpt":
        row.status, row.next_attempt_at = "failed_permanently", None
        row.last_error = f"Dauerhaft abgelehnt ({result.stage}): {reply}"[:1000]
        return
    pending = pending_recipients(row)
    delivered = [a for a, s in row.recipient_status.items() if s.get("status") == "sent"]
    refused = [a for a, s in row.recipient_status.items() if s.get("status") == "refused"]
    if not pending:
        if delivered:
            row.status, row.next_attempt_at = "sent", None
            row.sent_at = row.sent_at or now
            suppressed = [
                a for a, s in row.recipient_status.items() if s.get("status") == "suppressed"
            ]
            left_out = [
                *(f"{a} (abgelehnt)" for a in refused),
                *(f"{a} (gesperrt)" for a in suppressed),
            ]
            row.last_error = (
                f"Teilweise zugestellt; nicht an: {', '.join(left_out)}"[:1000]
                if left_out
                else None
            )
        else:
            row.status, row.next_attempt_at = "failed_permanently", None
            row.last_error = f"Alle Empfänger dauerhaft abgelehnt: {reply}"[:1000]
        return
    if delivered:
        row.sent_at = row.sent_at or now
    max_age = timedelta(hours=settings.retry_max_age_hours)
    if now - _age_start(row) >= max_age:
        row.status, row.next_attempt_at = "failed_permanently", None
        row.last_error = (
            f"Zustellung nach {settings.retry_max_age_hours:g} Stunden aufgegeben: {reply}"
        )[:1000]
        return
    row.status = "retrying"
    row.next_attempt_at = min(now + backoff(row.attempts), _age_start(row) + max_age)
    partial = f" (bereits zugestellt an {', '.join(delivered)})" if delivered else ""
    row.last_error = f"Vorübergehender Fehler ({result.stage}): {reply}{partial}"[:1000]


def _flag_contacts(
    session: Session, row: OutboxMessage, refused: list[str], result: SendResult, now: datetime
) -> None:
    """Flag the directory contacts behind permanently refused addresses, and log it."""
    if not row.ags or row.is_test:
        return
    wanted = {a.lower() for a in refused}
    for contact in session.exec(select(Contact).where(Contact.ags == row.ags)).all():
        try:
            address = normalize_address(contact.email).lower()
        except Exception:
            continue
        if address not in wanted:
            continue
        state = result.recipients.get(address) or next(
            s for a, s in result.recipients.items() if a.lower() == address
        )
        reason = f"{state.get('code')} {state.get('text') or ''}".strip()[:500]
        contact.delivery_failed_at = now
        contact.delivery_failure = reason
        session.add(contact)
        session.add(
            Event(
                at=now,
                campaign_id=row.campaign_id,
                ags=row.ags,
                actor=ACTOR,
                kind=EventKind.CONTACT_UNDELIVERABLE,
                reason=f"Mail an {contact.email} dauerhaft abgelehnt: {reason}"[:1000],
                data={"contact_id": contact.id, "outbox_id": row.id, "code": state.get("code")},
            )
        )
