"""No live portal link at rest: the stored mail has a placeholder, the link is put in at hand-over.

The acceptance test runs a campaign (start, reminders), delivers it to a real SMTP server,
takes the links out of the delivered mail (they must open the portal), then dumps the whole
database (every table and column, every MIME part decoded, and on SQLite the database and WAL
files byte for byte) and looks for any string that the portal would accept as a token.
"""

from __future__ import annotations

import email
import hashlib
import json
import re
from datetime import datetime
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData
from sqlmodel import Session, select

from efa_rollout.mail.delivery import deliver
from efa_rollout.mail.personal_link import PLACEHOLDER, count_placeholders, insert_token
from efa_rollout.services.links import check_token
from efa_rollout.services.orchestration import remind, start_campaign
from efa_rollout.services.outbox_admin import retry_messages
from efa_rollout.settings import get_settings
from models import OutboxMessage, PortalToken
from tests.engine_fixtures import EWA, at, ostalbkreis_with_campaigns
from tests.mail_support import (
    NOW,
    queue_request,
)
from tests.smtp_fault_server import FaultServer

_LINK = re.compile(r"/p/([A-Za-z0-9_-]{32})")
_URLSAFE_RUN = re.compile(rb"[A-Za-z0-9_-]{32,}")


def _decoded_texts(raw: bytes) -> list[str]:
    """Every part of a MIME message, transfer encoding (base64, quoted-printable) undone."""
    message = email.message_from_bytes(raw, policy=policy.default)
    texts = [str(value) for value in message.values()]
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if payload:
            texts.append(payload.decode("utf-8", "replace"))
    return texts


def _links(raw: bytes) -> list[str]:
    """The tokens of the portal links in one delivered mail."""
    return [token for text in _decoded_texts(raw) for token in _LINK.findall(text)]


def _dump(engine: Engine) -> list[bytes]:
    """Every value of every table, as bytes; MIME values also decoded, part by part."""
    metadata = MetaData()
    metadata.reflect(engine)
    values: list[bytes] = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    if value is None:
                        continue
                    data = (
                        value
                        if isinstance(value, bytes | memoryview)
                        else (
                            json.dumps(value).encode()
                            if isinstance(value, dict | list)
                            else str(value).encode()
                        )
                    )
                    data = bytes(data)
                    values.append(data)
                    if b"MIME-Version" in data or b"Content-Type" in data:
                        values += [t.encode() for t in _decoded_texts(data)]
    return values


def _accepted_tokens(blobs: list[bytes], engine: Engine, now: datetime) -> list[str]:
    """Every 32-character window of URL-safe text in BLOBS that the portal accepts as a token."""
    with Session(engine) as session:
        live = {
            row.token_hash
            for row in session.exec(select(PortalToken)).all()
            if row.revoked_at is None and row.expires_at > now
        }
    found = []
    for blob in blobs:
        for run in _URLSAFE_RUN.findall(blob):
            for start in range(len(run) - 31):
                window = run[start : start + 32]
                if hashlib.sha256(window).hexdigest() in live:
                    found.append(window.decode())
    return found


def _database_files(engine: Engine) -> list[bytes]:
    """On SQLite: the database file and its WAL, byte for byte (free pages included)."""
    if engine.dialect.name != "sqlite":
        return []
    path = Path(engine.url.database or "")
    return [p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists()]


@pytest.mark.slow
def test_no_live_link_in_the_database_after_a_delivered_campaign(
    efa_env: Path, engine: Engine, smtp_server: FaultServer
) -> None:
    ostalbkreis_with_campaigns(efa_env)
    started = start_campaign(EWA, at("2024-04-15"))
    [report] = remind(campaign_id=EWA, as_of=at("2024-07-04"), actor="test")
    assert started["mails_queued"] == 42 and report.reminders > 0
    delivery = deliver(now=at("2024-07-04", 10))
    assert delivery.total("sent") == started["mails_queued"] + report.reminders

    delivered = [s.content for s in smtp_server.handler.stored]
    tokens = {token for raw in delivered for token in _links(raw)}
    now = at("2024-07-04", 11)
    with Session(engine) as session:
        assert all(check_token(session, t, now=now).valid for t in tokens)
    assert len(tokens) >= 42  # one live link per municipality at least

    blobs = _dump(engine)
    dumped = b"\n".join(blobs + _database_files(engine))
    assert not [t for t in tokens if t.encode() in dumped]
    assert _accepted_tokens(blobs + _database_files(engine), engine, now) == []
    # The search itself finds a live token where there is one.
    assert _accepted_tokens([delivered[0]], engine, now)


def test_stored_mail_has_the_placeholder_and_sent_mail_the_valid_link(
    session: Session, engine: Engine, smtp_server: FaultServer
) -> None:
    row = queue_request(session, "hauptamt@essingen.example")
    assert count_placeholders(row.raw) == 3  # text; href and text of the HTML link
    assert set(row.meta["link"]) == {"nonce", "hash"}
    deliver(now=NOW)
    [copy] = smtp_server.handler.stored
    [token] = set(_links(copy.content))
    assert copy.content == insert_token(row.raw, token)  # sent = stored with the link put in
    assert check_token(session, token, now=NOW).valid
    assert token.encode() not in row.raw


def test_a_long_portal_address_folds_inside_the_token_and_still_works(
    session: Session, smtp_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = "https://portal.landratsamt-ostalbkreis.example/efa/rueckmeldung/zugang"
    monkeypatch.setenv("EFA_PORTAL_BASE_URL", base)
    get_settings.cache_clear()
    row = queue_request(session, "hauptamt@essingen.example")
    assert row.raw.count(PLACEHOLDER.encode()) < 3  # a soft line break falls inside one
    assert count_placeholders(row.raw) == 3
    deliver(now=NOW)
    [copy] = smtp_server.handler.stored
    tokens = _links(copy.content)
    assert len(tokens) == 3 and len(set(tokens)) == 1  # text, href, HTML text
    assert check_token(session, tokens[0], now=NOW).valid
    assert [line for line in copy.content.split(b"\r\n") if len(line) > 78] == []


def test_retry_sends_the_same_link_with_the_same_message_id(
    session: Session, smtp_server: FaultServer
) -> None:
    row = queue_request(session, "drop-hauptamt@essingen.example")  # stored, then no reply
    deliver(now=NOW)
    session.expire_all()
    assert session.get(OutboxMessage, row.id).status == "unknown"
    retry_messages(session, now=NOW, ids=[row.id])
    session.commit()
    deliver(now=NOW)
    first, second = smtp_server.handler.stored
    assert first.message_id == second.message_id == row.message_id
    assert set(_links(first.content)) == set(_links(second.content))
    assert check_token(session, _links(second.content)[0], now=NOW).valid


def test_a_changed_link_secret_fails_clearly_and_sends_nothing(
    session: Session, smtp_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFA_LINK_SECRET", "a" * 40)
    row = queue_request(session, "hauptamt@essingen.example")
    monkeypatch.setenv("EFA_LINK_SECRET", "b" * 40)
    report = deliver(now=NOW)
    assert report.total("failed_permanently") == 1 and not smtp_server.handler.stored
    session.expire_all()
    failed = session.get(OutboxMessage, row.id)
    assert failed.status == "failed_permanently" and "Link-Geheimnis" in failed.last_error
    monkeypatch.setenv("EFA_LINK_SECRET", "a" * 40)  # the original secret is back
    retry_messages(session, now=NOW, ids=[row.id])
    session.commit()
    assert deliver(now=NOW).total("sent") == 1
    [copy] = smtp_server.handler.stored
    assert check_token(session, _links(copy.content)[0], now=NOW).valid


def test_a_mail_whose_link_data_was_lost_is_not_sent_with_the_placeholder(
    session: Session, smtp_server: FaultServer
) -> None:
    row = queue_request(session, "hauptamt@essingen.example")
    row.meta = {k: v for k, v in (row.meta or {}).items() if k != "link"}  # a stale writer's copy
    session.add(row)
    session.commit()
    report = deliver(now=NOW)
    assert report.total("failed_permanently") == 1 and not smtp_server.handler.stored
    session.expire_all()
    failed = session.get(OutboxMessage, row.id)
    assert failed.status == "failed_permanently" and "Link-Daten" in (failed.last_error or "")


def test_folder_mode_writes_the_delivered_mail_with_the_link(
    session: Session, efa_env: Path
) -> None:
    row = queue_request(session, "hauptamt@essingen.example")
    assert deliver(now=NOW).total("sent") == 1
    [path] = get_settings().effective_mail_dir.glob("*.eml")
    content = path.read_bytes()
    [token] = set(_links(content))
    assert content == insert_token(row.raw, token)
    assert check_token(session, token, now=NOW).valid


def test_link_secret_file_is_private(session: Session, efa_env: Path) -> None:
    queue_request(session, "hauptamt@essingen.example")
    secret = efa_env / "link-secret"
    assert secret.stat().st_mode & 0o077 == 0


def test_link_in_the_subject_is_refused(session: Session, tmp_path: Path) -> None:
    from efa_rollout.mail.render import MailRenderError, RenderedMail
    from efa_rollout.services.outbox import _check_placeholders

    rendered = RenderedMail(f"Link {PLACEHOLDER}", "x\n", "<p>x</p>")
    with pytest.raises(MailRenderError, match="Betreff"):
        _check_placeholders(rendered, b"")


def test_processes_creating_the_secret_at_once_all_get_the_same_one(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor

    from efa_rollout.mail.personal_link import load_link_secret

    with ProcessPoolExecutor(4) as pool:
        secrets = set(pool.map(load_link_secret, [tmp_path] * 32))
    assert len(secrets) == 1 and len(secrets.pop()) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["link-secret"]  # no temporary file left
