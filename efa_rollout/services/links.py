"""Personal portal links: random tokens, stored only as SHA-256 hashes; issuing and revoking.

A token is bound to one campaign and one municipality (AGS), expires after
``portal_token_days`` and can be revoked; rotating a link revokes every older one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from efa_rollout.domain.audit import EventKind, event_row
from efa_rollout.services.lookup import find_enrolment
from efa_rollout.settings import get_settings
from efa_rollout.texts import say
from models import Enrolment, Event, Municipality, PortalToken

__all__ = [
    "TOKEN_BYTES",
    "IssuedLink",
    "TokenCheck",
    "TokenState",
    "check_token",
    "hash_token",
    "issue_link",
    "issue_token",
    "looks_like_token",
    "portal_url",
    "revoke_links",
    "revoke_tokens",
    "rotate_token",
]

TOKEN_BYTES = 24  # 192 bits of randomness
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{22,128}$")  # token_urlsafe; ≥ 128 bits


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def looks_like_token(token: str) -> bool:
    """True when TOKEN has the shape of a token we issue (checked before any lookup)."""
    return bool(_TOKEN_SHAPE.match(token))


def issue_token(
    session: Session, *, campaign_id: str, ags: str, now: datetime, valid_days: int
) -> str:
    """Create a new token for CAMPAIGN_ID and AGS and return it (the only time it is visible)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        PortalToken(
            campaign_id=campaign_id,
            ags=ags,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + timedelta(days=valid_days),
        )
    )
    return token


def revoke_tokens(session: Session, *, campaign_id: str, ags: str, now: datetime) -> int:
    """Revoke every live token of CAMPAIGN_ID and AGS; returns how many."""
    tokens = session.exec(
        select(PortalToken).where(
            PortalToken.campaign_id == campaign_id,
            PortalToken.ags == ags,
            col(PortalToken.revoked_at).is_(None),
        )
    ).all()
    for token in tokens:
        token.revoked_at = now
        session.add(token)
    return len(tokens)


def rotate_token(
    session: Session, *, campaign_id: str, ags: str, now: datetime, valid_days: int
) -> tuple[str, int]:
    """Revoke the live tokens of CAMPAIGN_ID and AGS and issue a new one: (token, revoked)."""
    revoked = revoke_tokens(session, campaign_id=campaign_id, ags=ags, now=now)
    session.flush()
    token = issue_token(session, campaign_id=campaign_id, ags=ags, now=now, valid_days=valid_days)
    return token, revoked


def portal_url(base_url: str, token: str) -> str:
    """The personal link a municipality receives."""
    return f"{base_url.rstrip('/')}/p/{token}"


class TokenState(StrEnum):
    """What a presented token turned out to be."""

    VALID = "valid"
    UNKNOWN = "unknown"  # malformed or never issued
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class TokenCheck:
    """The result of looking up a presented token; ``row`` is set only when it is valid."""

    state: TokenState
    row: PortalToken | None = None

    @property
    def valid(self) -> bool:
        return self.state is TokenState.VALID


def check_token(session: Session, token: str, *, now: datetime) -> TokenCheck:
    """Look up TOKEN by its hash and say whether it may be used at NOW."""
    if not looks_like_token(token):
        return TokenCheck(TokenState.UNKNOWN)
    row = session.exec(
        select(PortalToken).where(PortalToken.token_hash == hash_token(token))
    ).first()
    if row is None:
        return TokenCheck(TokenState.UNKNOWN)
    if row.revoked_at is not None and row.revoked_at <= now:
        return TokenCheck(TokenState.REVOKED)
    if row.expires_at <= now:
        return TokenCheck(TokenState.EXPIRED)
    return TokenCheck(TokenState.VALID, row)


@dataclass(frozen=True)
class IssuedLink:
    """A link the coordinator just issued: the token is visible only now."""

    ags: str
    name: str
    token: str
    revoked: int
    valid_until: datetime


def issue_link(
    session: Session, campaign_id: str, ags: str, *, rotate: bool, now: datetime, actor: str
) -> IssuedLink:
    """Issue a personal link for AGS in CAMPAIGN_ID (ROTATE: revoke the older ones), logged."""

    valid_days = get_settings().portal_token_days
    enrolment = find_enrolment(session, campaign_id, ags)
    municipality = session.get(Municipality, enrolment.ags)
    revoked = 0
    if rotate:
        token, revoked = rotate_token(
            session, campaign_id=campaign_id, ags=enrolment.ags, now=now, valid_days=valid_days
        )
    else:
        token = issue_token(
            session, campaign_id=campaign_id, ags=enrolment.ags, now=now, valid_days=valid_days
        )
    reason = say("service.events.link_rotated" if rotate else "service.events.link_issued")
    data = {"revoked": revoked, "valid_days": valid_days}
    _log_link_event(session, enrolment, EventKind.PORTAL_LINK_ISSUED, now, actor, data, reason)
    name = municipality.name if municipality else enrolment.ags
    return IssuedLink(enrolment.ags, name, token, revoked, now + timedelta(days=valid_days))


def revoke_links(
    session: Session, campaign_id: str, ags: str, *, now: datetime, actor: str
) -> tuple[str, int]:
    """Revoke every link of AGS in CAMPAIGN_ID (logged); returns (AGS, how many were revoked)."""

    enrolment = find_enrolment(session, campaign_id, ags)
    revoked = revoke_tokens(session, campaign_id=campaign_id, ags=enrolment.ags, now=now)
    data = {"revoked": revoked}
    _log_link_event(session, enrolment, EventKind.PORTAL_LINKS_REVOKED, now, actor, data)
    return enrolment.ags, revoked


def _log_link_event(
    session: Session,
    enrolment: Enrolment,
    kind: EventKind,
    now: datetime,
    actor: str,
    data: dict[str, Any],
    reason: str | None = None,
) -> None:
    """The audit event of issuing or revoking an enrolment's links."""
    row = event_row(
        enrolment.campaign_id,
        enrolment.ags,
        enrolment.id,
        actor,
        now,
        kind,
        None,
        None,
        reason,
        data,
    )
    session.add(Event(**row))
