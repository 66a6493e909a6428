"""Suppression at delivery: an address suppressed after queueing (or before a retry) gets nothing.

Queueing already leaves suppressed addresses out (`services.suppression.drop_suppressed`). A mail
queued before its address bounced, or sent again with `efa mail retry`, is checked here, in
the claim's transaction: each suppressed recipient is marked ``suppressed`` in the row's
recipient states (final, so never handed to the relay) and logged as an event; a row left
with nobody to send to is finished without an SMTP exchange.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from efa_rollout.settings import Settings, get_settings
from models import Event, OutboxMessage, Suppression, table_of

if TYPE_CHECKING:
    from efa_rollout.mail.ledger_state import Claimed

#: Recipient state of an address that was left out because it is suppressed.
SUPPRESSED = "suppressed"
#: The event `efa mail outbox` lists (same kind as at queueing).
EVENT_KIND = "mail_recipient_suppressed"
ACTOR = "zustellung"

_OUTBOX = table_of(OutboxMessage)
_SUPPRESSION = table_of(Suppression)
_SUPPRESSED_PG = (
    f"SELECT email, reason FROM {_SUPPRESSION.name} "
    "WHERE email = ANY(%(wanted)s) AND lifted_at IS NULL"
)
_SUPPRESSED_SQLITE = (
    f"SELECT email, reason FROM {_SUPPRESSION.name} "
    "WHERE email IN ({marks}) AND lifted_at IS NULL"
)


def coordinator_addresses(settings: Settings | None = None) -> set[str]:
    """The coordinator's own addresses (lower case): a bounce never suppresses them."""
    settings = settings or get_settings()
    candidates = [settings.coordinator_email, settings.effective_reply_to, settings.mail_from]
    return {a.strip().lower() for a in candidates if a and a.strip()}


def suppressed_reasons(connection: Connection, addresses: Sequence[str]) -> dict[str, str]:
    """Lower-case address → reason, for those of ADDRESSES on the (unlifted) suppression list.

    The coordinator's own addresses never count as suppressed (an entry from an older
    version, or one added by hand, must not silently stop the weekly report).
    """
    wanted = sorted({a.lower() for a in addresses} - coordinator_addresses())
    if not wanted:
        return {}
    # A plain DB-API statement in the connection's transaction: delivery asks once per claimed
    # batch, and SQLAlchemy Core's per-execute work cost more than the query itself.
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if connection.dialect.name == "postgresql":
            cursor.execute(_SUPPRESSED_PG, {"wanted": wanted})
        else:
            cursor.execute(_SUPPRESSED_SQLITE.format(marks=", ".join("?" * len(wanted))), wanted)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return {str(email): str(reason) for email, reason in rows}


def suppressed_state(reason: str, now: datetime) -> dict[str, Any]:
    """The recipient state of a suppressed address (German text for `efa mail show`)."""
    return {
        "status": SUPPRESSED,
        "code": None,
        "text": f"Nicht gesendet: Adresse gesperrt (unzustellbar gemeldet: {reason})"[:300],
        "at": now.isoformat(),
    }


def event_row(
    *,
    outbox_id: int,
    campaign_id: str | None,
    ags: str | None,
    kind: str,
    sequence: int,
    address: str,
    reason: str,
    stage: str,
    now: datetime,
) -> dict[str, Any]:
    """The event of one recipient left out at STAGE (delivery, retry)."""
    return {
        "at": now,
        "campaign_id": campaign_id,
        "ags": ags,
        "actor": ACTOR,
        "kind": EVENT_KIND,
        "reason": (
            f"Nicht an {address} gesendet ({'Zustellung' if stage == 'delivery' else 'erneuter Versand'}): "
            f"Adresse gesperrt (unzustellbar gemeldet: {reason})"
        )[:1000],
        "data": {
            "kind": kind,
            "sequence": sequence,
            "recipient": address,
            "outbox_id": outbox_id,
            "stage": stage,
        },
    }


def skip_suppressed(
    connection: Connection, claimed: list[Claimed], *, now: datetime
) -> list[Claimed]:
    """CLAIMED without suppressed recipients; rows left with nobody are finished, not returned."""
    reasons = suppressed_reasons(connection, [a for c in claimed for a in c.pending])
    if not reasons:
        return claimed
    keep: list[Claimed] = []
    for item in claimed:
        blocked = [a for a in item.pending if a.lower() in reasons]
        if not blocked:
            keep.append(item)
            continue
        states = dict(item.recipient_status)
        for address in blocked:
            states[address] = suppressed_state(reasons[address.lower()], now)
        pending = tuple(a for a in item.pending if a not in blocked)
        _record(connection, item, blocked, reasons, states, finished=not pending, now=now)
        if pending:
            keep.append(dataclasses.replace(item, pending=pending, recipient_status=states))
    return keep


def _record(
    connection: Connection,
    item: Claimed,
    blocked: list[str],
    reasons: dict[str, str],
    states: dict[str, Any],
    *,
    finished: bool,
    now: datetime,
) -> None:
    sequence: int = connection.execute(
        select(_OUTBOX.c.sequence).where(_OUTBOX.c.id == item.id)
    ).scalar_one()
    connection.execute(
        insert(Event),
        [
            event_row(
                outbox_id=item.id,
                campaign_id=item.campaign_id,
                ags=item.ags,
                kind=item.kind,
                sequence=sequence,
                address=address.lower(),
                reason=reasons[address.lower()],
                stage="delivery",
                now=now,
            )
            for address in blocked
        ],
    )
    values: dict[str, Any] = {"recipient_status": states}
    if finished:
        delivered = any(s.get("status") == "sent" for s in states.values())
        names = ", ".join(a.lower() for a in blocked)
        values.update(
            status="sent" if delivered else "failed_permanently",
            next_attempt_at=None,
            claimed_by=None,
            claimed_at=None,
            last_error=(
                f"Nicht gesendet an {names}: Adresse gesperrt. Aufheben mit »efa contacts "
                f"unsuppress ADRESSE«, dann »efa mail retry {item.id}«."
            )[:1000],
        )
    connection.execute(update(_OUTBOX).where(_OUTBOX.c.id == item.id).values(**values))
