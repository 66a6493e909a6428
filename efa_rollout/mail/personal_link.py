"""Personal portal links in mail without a live credential at rest.

A queued mail stores a placeholder where the link's token goes. The token itself is
HMAC-SHA256(link secret, nonce, Message-ID), cut to the length of a random portal token; it is
computed again at hand-over and put in place of the placeholder, so the bytes sent are the
stored bytes with the placeholder replaced (same length: the line structure, the
quoted-printable folding and the Message-ID stay exactly as stored). The database keeps the
random nonce (outbox row), the token's SHA-256 (outbox row and PortalToken), never the token;
the link secret lives outside the database (EFA_LINK_SECRET, or the file ``link-secret``).
A retry of the same row gives the same token, so `efa mail retry` sends the same link.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session

from efa_rollout.errors import UserError
from models import PortalToken

#: As long as a token of `secrets.token_urlsafe(24)` (32 characters), and made only of
#: characters that quoted-printable leaves as they are.
PLACEHOLDER = "efa-link-placeholder-not-a-token"
TOKEN_LENGTH = 32
SECRET_FILE = "link-secret"
SECRET_ENV = "EFA_LINK_SECRET"
SECRET_FILE_ENV = "EFA_LINK_SECRET_FILE"
_DOMAIN = b"efa-portal-link\x00"
# The placeholder as it appears in a stored body: possibly with a quoted-printable soft
# line break ("=" CRLF) between any two of its characters.
_STORED_PLACEHOLDER = re.compile(
    b"(?:=\r\n)?".join(re.escape(bytes([c])) for c in PLACEHOLDER.encode("ascii"))
)
_SOFT_BREAK = frozenset(b"=\r\n")

assert len(PLACEHOLDER) == TOKEN_LENGTH


class LinkSecretError(UserError):
    """The link secret is missing, too short, or not the one a message was queued with."""


def secret_path(data_dir: Path) -> Path:
    """Where the link secret file is: EFA_LINK_SECRET_FILE, else DATA_DIR/link-secret."""
    configured = os.environ.get(SECRET_FILE_ENV, "")
    return Path(configured) if configured else data_dir / SECRET_FILE


def load_link_secret(data_dir: Path, *, create: bool = True) -> bytes:
    """EFA_LINK_SECRET, else the secret file (created with mode 0600 on first use)."""
    configured = os.environ.get(SECRET_ENV, "")
    if configured:
        if len(configured) < 32:
            raise LinkSecretError(f"{SECRET_ENV} ist zu kurz (mindestens 32 Zeichen).")
        return configured.encode()
    path = secret_path(data_dir)
    if not path.exists():
        if not create:
            raise LinkSecretError(f"Das Link-Geheimnis {path} fehlt.")
        _create_secret_file(path)
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < 32:
        raise LinkSecretError(f"{path} enthält kein gültiges Link-Geheimnis.")
    return secret.encode()


def _create_secret_file(path: Path) -> None:
    """Write a new secret (mode 0600) so that nobody ever reads it half-written.

    Written to a temporary file first and then hard-linked into place, which fails if another
    process got there first; then theirs is used.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first: use theirs
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def derive_token(secret: bytes, nonce: str, message_id: str) -> str:
    """The portal token of one queued mail: 32 URL-safe characters, like a random one."""
    digest = hmac.new(
        secret, _DOMAIN + nonce.encode("ascii") + b"\x00" + message_id.encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode("ascii")


def hash_token(token: str) -> str:
    """The stored form of a token (as `efa_rollout.services.links.hash_token`)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def new_nonce() -> str:
    """A fresh random nonce for one outbox row."""
    return secrets.token_hex(16)


def issue_mail_token(
    session: Session,
    *,
    secret: bytes,
    campaign_id: str,
    ags: str,
    message_id: str,
    now: datetime,
    valid_days: int,
) -> dict[str, str]:
    """Register the token of the mail MESSAGE_ID (its hash only); the outbox row's link meta."""
    nonce = new_nonce()
    token_hash = hash_token(derive_token(secret, nonce, message_id))
    session.add(
        PortalToken(
            campaign_id=campaign_id,
            ags=ags,
            token_hash=token_hash,
            created_at=now,
            expires_at=now + timedelta(days=valid_days),
        )
    )
    return {"nonce": nonce, "hash": token_hash}


def count_placeholders(raw: bytes) -> int:
    """How often the placeholder stands in RAW (soft line breaks inside it allowed)."""
    if b"=\r\n" not in raw:  # no soft line break anywhere: the plain count is the count
        return raw.count(PLACEHOLDER.encode("ascii"))
    return sum(1 for _ in _STORED_PLACEHOLDER.finditer(raw))


def insert_token(raw: bytes, token: str) -> bytes:
    """RAW with every placeholder replaced by TOKEN, soft line breaks kept where they were."""
    if len(token) != TOKEN_LENGTH or not token.isascii():
        raise ValueError("token of unexpected shape")
    replacement = token.encode("ascii")

    def put(match: re.Match[bytes]) -> bytes:
        out = bytearray()
        chars = iter(replacement)
        for byte in match.group():
            out.append(byte if byte in _SOFT_BREAK else next(chars))
        return bytes(out)

    return _STORED_PLACEHOLDER.sub(put, raw)


def content_to_send(
    raw: bytes, meta: dict[str, Any] | None, message_id: str, secret: bytes
) -> bytes:
    """What goes over the wire (or into the .eml file) for a stored message.

    Raises LinkSecretError when the secret is not the one the message was queued with.
    """
    link = (meta or {}).get("link")
    if not link:
        return raw
    token = derive_token(secret, str(link["nonce"]), message_id)
    if not hmac.compare_digest(hash_token(token), str(link["hash"])):
        raise LinkSecretError(
            "Der persönliche Link kann nicht eingesetzt werden: das Link-Geheimnis "
            f"({SECRET_ENV} oder Datei {SECRET_FILE}) ist nicht das, mit dem die Nachricht "
            "eingereiht wurde. Das ursprüngliche Geheimnis wiederherstellen und "
            "»efa mail retry« aufrufen."
        )
    return insert_token(raw, token)
