"""Live portal links in mail stored before the link-at-rest change: found and taken out.

Rows queued before that change keep the token of their personal link in clear in ``raw`` (and
in their row no ``meta.link``). Each candidate in a stored body (``/p/`` and 32 URL-safe
characters, quoted-printable soft line breaks allowed anywhere) counts only when its SHA-256 is
a portal token of the row's campaign and municipality; it is then replaced in place, by a string
of the same length, so the line structure, the folding and the Message-ID stay as stored:

- a row that may still be handed over (queued, retrying, unknown, failed: `efa mail retry`) gets
  the placeholder and a new derived token (personal_link: HMAC of the link secret, a new nonce
  and its Message-ID), registered with the old token's expiry and revocation, so it is sent
  with a link that works exactly as long as the old one would have;
- a row that is never handed over again (sent, cancelled) gets REMOVED_MARK: its raw stays the
  record of what was sent, with the token's place marked, as for every newer row; the token's
  hash is kept in ``meta.link_scrub`` so that a presented link can still be matched to the mail.

The old token itself is left valid: recipients use it. Rows a worker holds right now
("sending") are left for the next run. Running it again finds nothing more.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from efa_rollout.mail.context import KINDS_WITH_LINK
from efa_rollout.mail.personal_link import (
    PLACEHOLDER,
    TOKEN_LENGTH,
    LinkSecretError,
    derive_token,
    hash_token,
    load_link_secret,
    new_nonce,
)
from efa_rollout.texts import say
from models import Event, OutboxMessage, PortalToken

#: Same length as a token, only characters quoted-printable leaves alone, and no token's shape
#: the portal accepts under any secret (it is not an HMAC output, and never registered).
REMOVED_MARK = "efa-link-token-removed-from-rest"
SENDABLE = ("queued", "retrying", "unknown", "failed_permanently")
FINAL = ("sent", "cancelled")
IN_FLIGHT = ("sending",)

_SOFT = b"(?:=\r\n)?"
_TOKEN_CHAR = b"[A-Za-z0-9_-]"
# "/p/" then 32 token characters, a soft line break possible between any two, and no 33rd.
_STORED_LINK = re.compile(
    b"/" + _SOFT + b"p" + _SOFT + b"/" + _SOFT
    # Ruff keeps the parentheses: the group is the token with its soft breaks.
    + b"(" + _TOKEN_CHAR + (_SOFT + _TOKEN_CHAR) * (TOKEN_LENGTH - 1) + b")"
    + b"(?!" + _SOFT + _TOKEN_CHAR + b")"
)  # fmt: skip
_SOFT_BREAK = frozenset(b"=\r\n")

assert len(REMOVED_MARK) == TOKEN_LENGTH


@dataclass
class ScrubReport:
    """What a scrub did (or, with dry_run, would do)."""

    converted: list[int] = field(default_factory=list)  # still sendable: placeholder + new link
    marked: list[int] = field(default_factory=list)  # sent or cancelled: token's place marked
    in_flight: list[int] = field(default_factory=list)  # held by a worker: next run
    examined: int = 0

    @property
    def changed(self) -> int:
        """Rows changed (or to be changed)."""
        return len(self.converted) + len(self.marked)


def stored_tokens(raw: bytes) -> list[tuple[int, int, str]]:
    """(start, end, token) of every candidate link token in RAW, soft line breaks removed."""
    return [
        (m.start(1), m.end(1), bytes(b for b in m.group(1) if b not in _SOFT_BREAK).decode())
        for m in _STORED_LINK.finditer(raw)
    ]


def replace_tokens(raw: bytes, spans: Iterable[tuple[int, int]], text: str) -> bytes:
    """RAW with each span (a token with its soft breaks) replaced by TEXT, breaks kept in place."""
    out, last = bytearray(), 0
    replacement = text.encode("ascii")
    for start, end in sorted(spans):
        out += raw[last:start]
        chars = iter(replacement)
        out += bytes(b if b in _SOFT_BREAK else next(chars) for b in raw[start:end])
        last = end
    return bytes(out + raw[last:])


def scrub_legacy_links(
    session: Session, *, secret: bytes, now: datetime, dry_run: bool = False, batch: int = 500
) -> ScrubReport:
    """Take every live token out of stored mail (see the module docstring); flushes, no commit."""
    _check_secret(session, secret)
    if not dry_run and session.connection().dialect.name == "sqlite":
        # The replaced bytes are zeroed in the file, not only unlinked (see settle_files).
        session.connection().exec_driver_sql("PRAGMA secure_delete = ON")
    report = ScrubReport()
    for ids in _candidate_batches(session, batch):
        rows = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.id).in_(ids))
            .order_by(col(OutboxMessage.id))
            .with_for_update()
        ).all()
        for row in rows:
            report.examined += 1
            _scrub_row(session, row, secret=secret, now=now, dry_run=dry_run, report=report)
        session.flush()
    return report


def _candidate_batches(session: Session, size: int) -> Iterable[Sequence[int]]:
    """Ids of campaign mail without a placeholder link and not scrubbed yet, in batches."""
    query = (
        select(OutboxMessage.id)
        .where(
            col(OutboxMessage.campaign_id).is_not(None),
            col(OutboxMessage.ags).is_not(None),
            *_unscrubbed(),
        )
        .order_by(col(OutboxMessage.id))
    )
    ids = [outbox_id for outbox_id in session.exec(query).all() if outbox_id is not None]
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _unscrubbed() -> tuple[Any, ...]:
    """Rows with neither a placeholder link nor a scrub mark in their meta."""
    meta = col(OutboxMessage.meta)
    return meta["link"].as_string().is_(None), meta["link_scrub"].as_string().is_(None)


def _scrub_row(
    session: Session,
    row: OutboxMessage,
    *,
    secret: bytes,
    now: datetime,
    dry_run: bool,
    report: ScrubReport,
) -> None:
    """Replace the live tokens of ROW, as its status allows."""
    assert row.id is not None and row.campaign_id is not None and row.ags is not None
    if row.status in IN_FLIGHT:  # a worker may write the row: look again next time
        if stored_tokens(row.raw):
            report.in_flight.append(row.id)
        return
    tokens = _own_tokens(session, row.campaign_id, row.ags)
    found = [(s, e, t) for s, e, t in stored_tokens(row.raw) if hash_token(t) in tokens]
    if not found:
        if not dry_run:  # looked at: not a candidate again
            row.meta = {**(row.meta or {}), "link_scrub": {"at": now.isoformat(), "mode": "none"}}
            session.add(row)
        return
    sendable = row.status not in FINAL
    (report.converted if sendable else report.marked).append(row.id)
    if dry_run:
        return
    old = tokens[hash_token(found[0][2])]
    scrub: dict[str, Any] = {
        "at": now.isoformat(),
        "token_hashes": sorted({hash_token(t) for _, _, t in found}),
    }
    meta = dict(row.meta or {})
    if sendable:
        nonce = new_nonce()
        token_hash = hash_token(derive_token(secret, nonce, row.message_id))
        session.add(
            PortalToken(
                campaign_id=old.campaign_id,
                ags=old.ags,
                token_hash=token_hash,
                created_at=old.created_at,
                expires_at=old.expires_at,
                revoked_at=old.revoked_at,
            )
        )
        meta["link"] = {"nonce": nonce, "hash": token_hash}
        scrub["mode"] = "placeholder"
    else:
        scrub["mode"] = "marked"
    meta["link_scrub"] = scrub
    row.raw = replace_tokens(
        row.raw, [(s, e) for s, e, _ in found], PLACEHOLDER if sendable else REMOVED_MARK
    )
    row.meta = meta
    session.add(row)


def _own_tokens(session: Session, campaign_id: str, ags: str) -> dict[str, PortalToken]:
    """Token hash → PortalToken of CAMPAIGN_ID and AGS."""
    rows = session.exec(
        select(PortalToken).where(PortalToken.campaign_id == campaign_id, PortalToken.ags == ags)
    ).all()
    return {r.token_hash: r for r in rows}


def settle_files(engine: Engine) -> str | None:
    """After the commit: no old copy in the database files; what is left to do, if anything.

    SQLite: the WAL is checkpointed into the file and truncated (the pages the scrub freed are
    zeroed there). PostgreSQL keeps the old row versions in its files until the table is
    rewritten; that takes a lock, so it is named, not done.
    """
    if engine.dialect.name == "sqlite":
        connection = engine.raw_connection()  # outside a transaction: no BEGIN IMMEDIATE first
        try:
            connection.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            connection.close()
        return None
    return say("service.link_scrub.vacuum")


def legacy_link_rows(session: Session) -> int:
    """How many rows of mail that carries a link are from before the change and not scrubbed."""
    query = select(func.count()).where(
        col(OutboxMessage.kind).in_(KINDS_WITH_LINK),
        col(OutboxMessage.campaign_id).is_not(None),
        *_unscrubbed(),
    )
    return int(session.exec(query).one())


def scrub_secret(session: Session, data_dir: Path) -> bytes:
    """The link secret as delivery loads it; created only while no mail uses one yet."""
    try:
        return load_link_secret(data_dir, create=False)
    except LinkSecretError:
        if _newest_links(session):
            raise
        return load_link_secret(data_dir)


def record_scrub(session: Session, report: ScrubReport, *, now: datetime, actor: str) -> None:
    """One event for the log: how many rows were changed."""
    session.add(
        Event(
            at=now,
            actor=actor,
            kind="mail_links_scrubbed",
            reason=say("service.link_scrub.scrubbed"),
            data={"converted": report.converted, "marked": report.marked},
        )
    )


def _newest_links(session: Session) -> list[tuple[str, dict[str, Any]]]:
    """(Message-ID, link meta) of the newest rows that carry a placeholder link."""
    rows = session.exec(
        select(OutboxMessage.message_id, OutboxMessage.meta)
        .order_by(col(OutboxMessage.id).desc())
        .limit(200)
    ).all()
    return [(mid, meta["link"]) for mid, meta in rows if (meta or {}).get("link")]


def _check_secret(session: Session, secret: bytes) -> None:
    """Refuse a link secret that is not the one newer mail was queued with (it would not send)."""
    for message_id, link in _newest_links(session)[:1]:
        token = derive_token(secret, str(link["nonce"]), message_id)
        if not hmac.compare_digest(hash_token(token), str(link["hash"])):
            raise LinkSecretError(
                say("service.link_scrub.secret_mismatch"),
                details=[say("service.link_scrub.same_settings")],
            )
