"""The delivery ledger's vocabulary: claimed rows, send results, leases, backoff, pending recipients.

No statement runs here: these are the values the ledger's modules (`efa_rollout.mail.ledger`,
`ledger_outcome`, `ledger_recovery`) and the senders pass around, the pure rules over them,
and the two ways of opening one committed transaction on an engine or a held connection.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine
from sqlmodel import Session

from efa_rollout.db import session_scope
from models import OutboxMessage

#: A claim older than this is considered abandoned even if its process cannot be checked.
CLAIM_LEASE = timedelta(minutes=15)
DUE_STATUSES = ("queued", "retrying")
BACKOFF_BASE_SECONDS = 60.0
BACKOFF_CAP_SECONDS = 3600.0
ACTOR = "zustellung"
#: "suppressed": left out because the address is on the suppression list (mail.suppression).
FINAL_RECIPIENT_STATES = frozenset({"sent", "refused", "suppressed"})

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
def begin(bind: Bind) -> Iterator[Connection]:
    """One committed transaction on BIND."""
    if isinstance(bind, Engine):
        with bind.begin() as connection:
            yield connection
    else:
        with bind.begin():
            yield bind


@contextmanager
def session_on(bind: Bind) -> Iterator[Session]:
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
    return pending_of(row.recipients, row.cc, row.recipient_status or {})


def pending_of(to: list[str], cc: list[str], states: RecipientStates) -> list[str]:
    done = {a for a, state in states.items() if state.get("status") in FINAL_RECIPIENT_STATES}
    result: list[str] = []
    for address in [*to, *cc]:
        if address not in done and address not in result:
            result.append(address)
    return result


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


def attempt_values(result: SendResult, now: datetime) -> dict[str, Any]:
    return {
        "at": now,
        "outcome": result.outcome,
        "smtp_code": result.code,
        "smtp_text": f"[{result.stage}] {result.text}"[:1000],
    }
