"""Personal portal links: random tokens, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, select

from models import PortalToken

TOKEN_BYTES = 24  # 192 bits of randomness


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


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
            PortalToken.revoked_at.is_(None),  # type: ignore[union-attr]
        )
    ).all()
    for token in tokens:
        token.revoked_at = now
        session.add(token)
    return len(tokens)


def portal_url(base_url: str, token: str) -> str:
    """The personal link a municipality receives."""
    return f"{base_url.rstrip('/')}/p/{token}"
