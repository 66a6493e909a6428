"""`efa mail scrub-links`: live links in mail stored before the link-at-rest change are taken out.

A legacy row is made as the old code made it: a random token registered by its hash, the stored
message with that token in clear, no ``meta.link``. Runs on SQLite and on PostgreSQL
(EFA_TEST_DATABASE_URL, see conftest).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from efa_rollout.cli import app as efa
from efa_rollout.errors import UserError
from efa_rollout.mail.delivery import deliver
from efa_rollout.mail.personal_link import count_placeholders, insert_token
from efa_rollout.services.link_scrub import REMOVED_MARK, replace_tokens, stored_tokens
from efa_rollout.services.links import check_token, issue_token
from efa_rollout.services.outbox import queue_campaign_mail
from efa_rollout.services.outbox_admin import retry_messages
from efa_rollout.settings import get_settings
from models import Enrolment, Event, Municipality, OutboxMessage, PortalToken
from tests.mail_support import NOW, add_campaign, add_contact, add_enrolment, add_municipality
from tests.test_mail_link_at_rest import _accepted_tokens, _database_files, _dump, _links

_runner = CliRunner()
LONG_BASE = "https://portal.landratsamt-ostalbkreis.example/efa/rueckmeldung/zugang"


@pytest.fixture
def efa_cli(session: Session) -> Any:
    """`efa ARGS` after ending the test session's transaction (SQLite: BEGIN IMMEDIATE)."""

    def invoke(*args: str, ok: bool = True) -> Any:
        session.commit()
        result = _runner.invoke(efa, list(args))
        if ok:
            assert result.exit_code == 0, result.output
            return result.output
        return result

    return invoke


@pytest.fixture
def long_base(efa_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long portal address: quoted-printable folds inside the token."""
    monkeypatch.setenv("EFA_PORTAL_BASE_URL", LONG_BASE)
    get_settings.cache_clear()


def _setup(session: Session) -> tuple[Any, Municipality, Enrolment]:
    campaign = add_campaign(session)
    municipality = add_municipality(session)
    add_contact(session, municipality.ags, "hauptamt@essingen.example")
    enrolment = add_enrolment(session, campaign, municipality.ags)
    return campaign, municipality, enrolment


def _legacy(
    session: Session, parts: tuple[Any, Municipality, Enrolment], sequence: int
) -> tuple[OutboxMessage, str]:
    """A reminder stored as before the change: the live token in clear, no meta.link."""
    campaign, municipality, enrolment = parts
    row = queue_campaign_mail(
        session,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        kind="reminder",
        sequence=sequence,
        now=NOW,
    )
    assert row is not None
    derived = session.exec(
        select(PortalToken).where(PortalToken.token_hash == row.meta["link"]["hash"])
    ).one()
    session.delete(derived)
    token = issue_token(
        session, campaign_id=campaign.id, ags=municipality.ags, now=NOW, valid_days=120
    )
    row.raw = insert_token(row.raw, token)
    row.meta = {k: v for k, v in row.meta.items() if k != "link"}
    session.add(row)
    session.commit()
    assert row.raw.count(token.encode()) < 3  # folded: a soft line break inside one
    assert len(stored_tokens(row.raw)) == 3 and {t for *_, t in stored_tokens(row.raw)} == {token}
    return row, token


def _row(session: Session, row_id: int | None) -> OutboxMessage:
    session.expire_all()
    row = session.get(OutboxMessage, row_id)
    assert row is not None
    session.commit()
    return row


def test_stored_tokens_across_soft_line_breaks() -> None:
    token = "A" * 10 + "b" * 10 + "-_" * 6
    raw = (
        b"x /=\r\np/AAAAAAAAAA=\r\nbbbbbbbbbb-_-_-_-_-_-_\r\n/p/" + b"c" * 33 + b" /p/" + b"d" * 31
    )
    [(start, end, found)] = stored_tokens(raw)
    assert found == token  # a 33-character run and a 31-character one are no token
    replaced = replace_tokens(raw, [(start, end)], REMOVED_MARK)
    assert len(replaced) == len(raw) and replaced.count(b"=\r\n") == raw.count(b"=\r\n")
    assert stored_tokens(replaced)[0][2] == REMOVED_MARK


def test_scrub_takes_every_live_link_out_and_queued_mail_still_works(
    efa_cli: Any, session: Session, engine: Engine, long_base: None
) -> None:
    parts = _setup(session)
    sent, sent_token = _legacy(session, parts, 1)
    assert _deliver(session).total("sent") == 1  # delivered before the update, as it was
    sent_raw = _row(session, sent.id).raw
    queued, queued_token = _legacy(session, parts, 2)
    queued_raw = queued.raw
    cancelled, _ = _legacy(session, parts, 3)
    cancelled.status = "cancelled"
    session.add(cancelled)
    session.commit()
    new = queue_campaign_mail(
        session,
        campaign=parts[0],
        enrolment=parts[2],
        municipality=parts[1],
        kind="reminder",
        sequence=4,
        now=NOW,
    )
    assert new is not None
    session.commit()
    new_raw, new_id = new.raw, new.id
    assert "3 Mails von vor der Umstellung" in efa_cli("db", "status")

    out = efa_cli("mail", "scrub-links", "--dry-run")
    assert "1 noch zu sendende" in out and "2 gesendete oder stornierte" in out
    assert _row(session, queued.id).raw == queued_raw  # a dry run changes nothing

    out = efa_cli("mail", "scrub-links")
    assert "Klartext-Links ersetzt: 1 noch zu sendende" in out
    assert "2 gesendete oder stornierte (Stelle markiert)" in out
    # PostgreSQL keeps old row versions in its files until the table is rewritten: named
    assert ("VACUUM FULL outboxmessage" in out) == (engine.dialect.name == "postgresql")
    assert _accepted_tokens(_dump(engine), engine, NOW) == []  # no live link left at rest
    blobs = _dump(engine) + _database_files(engine)
    assert _accepted_tokens(blobs, engine, NOW) == []  # nor in free pages or the WAL
    assert not [t for t in (sent_token, queued_token) if t.encode() in b"\n".join(blobs)]
    assert "Mails von vor der Umstellung" not in efa_cli("db", "status")

    # sent: the record of what was sent, with the token's place marked; the link still works
    marked = _row(session, sent.id)
    assert marked.raw == replace_tokens(
        sent_raw, [(s, e) for s, e, _ in stored_tokens(sent_raw)], REMOVED_MARK
    )
    assert marked.meta["link_scrub"]["token_hashes"] == [
        hashlib.sha256(sent_token.encode()).hexdigest()
    ]
    assert "link" not in marked.meta
    assert check_token(session, sent_token, now=NOW).valid
    assert _row(session, new_id).raw == new_raw  # newer mail is left as it is

    # queued: the placeholder, same length and folding; sent with a working link
    scrubbed = _row(session, queued.id)
    assert len(scrubbed.raw) == len(queued_raw) and count_placeholders(scrubbed.raw) == 3
    assert [len(x) for x in scrubbed.raw.split(b"\r\n")] == [
        len(x) for x in queued_raw.split(b"\r\n")
    ]
    report = _deliver(session)
    assert report.total("sent") == 2  # the scrubbed one and the newer one
    eml = [p.read_bytes() for p in get_settings().effective_mail_dir.glob("*.eml")]
    [content] = [c for c in eml if queued.message_id.encode() in c]
    [link] = set(_links(content))
    assert link != queued_token
    check = check_token(session, link, now=NOW)
    old = check_token(session, queued_token, now=NOW)
    assert check.valid and old.valid and check.row is not None and old.row is not None
    assert check.row.expires_at == old.row.expires_at  # "gültig bis" in the text stays true
    assert content == insert_token(scrubbed.raw, link)

    # a second run finds nothing more; the first one is in the log
    assert "0 noch zu sendende" in efa_cli("mail", "scrub-links")
    session.expire_all()
    [event] = session.exec(select(Event).where(Event.kind == "mail_links_scrubbed")).all()
    assert event.data == {"converted": [queued.id], "marked": [sent.id, cancelled.id]}


def test_unknown_row_is_retried_with_a_working_link(
    efa_cli: Any, session: Session, long_base: None
) -> None:
    parts = _setup(session)
    row, token = _legacy(session, parts, 1)
    row.status = "unknown"  # handed over before the update, outcome unclear
    session.add(row)
    session.commit()
    efa_cli("mail", "scrub-links")
    session.expire_all()  # the scrub changed the row in another session
    retry_messages(session, now=NOW, ids=[row.id])
    assert _deliver(session).total("sent") == 1
    [path] = get_settings().effective_mail_dir.glob("*.eml")
    [link] = set(_links(path.read_bytes()))
    assert check_token(session, link, now=NOW).valid
    assert check_token(session, token, now=NOW).valid  # who got the first hand-over keeps it


def test_revoked_link_stays_revoked(efa_cli: Any, session: Session, long_base: None) -> None:
    parts = _setup(session)
    _, token = _legacy(session, parts, 1)
    efa_cli("portal", "link", parts[0].id, parts[1].ags, "--rotate")  # revokes the old token
    efa_cli("mail", "scrub-links")
    assert _deliver(session).total("sent") == 1
    [path] = get_settings().effective_mail_dir.glob("*.eml")
    [link] = set(_links(path.read_bytes()))
    assert check_token(session, link, now=NOW).state == check_token(session, token, now=NOW).state


def test_a_row_in_delivery_is_left_for_the_next_run(
    efa_cli: Any, session: Session, long_base: None
) -> None:
    parts = _setup(session)
    row, _ = _legacy(session, parts, 1)
    row.status = "sending"
    session.add(row)
    session.commit()
    raw = row.raw
    out = efa_cli("mail", "scrub-links")
    assert f"Gerade in Zustellung, beim nächsten Aufruf: {row.id}." in out
    assert _row(session, row.id).raw == raw
    row = _row(session, row.id)
    row.status = "sent"
    session.add(row)
    session.commit()
    assert "1 gesendete oder stornierte" in efa_cli("mail", "scrub-links")


def test_a_wrong_link_secret_changes_nothing(
    efa_cli: Any, session: Session, long_base: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFA_LINK_SECRET", "a" * 40)
    parts = _setup(session)
    row, _ = _legacy(session, parts, 1)
    queue_campaign_mail(
        session,
        campaign=parts[0],
        enrolment=parts[2],
        municipality=parts[1],
        kind="reminder",
        sequence=2,
        now=NOW,
    )
    session.commit()
    monkeypatch.setenv("EFA_LINK_SECRET", "b" * 40)
    result = efa_cli("mail", "scrub-links", ok=False)
    assert result.exit_code != 0
    assert isinstance(result.exception, UserError)
    assert "Das Link-Geheimnis passt nicht" in result.exception.render()
    assert "es wurde nichts geändert" in result.exception.render()
    assert _row(session, row.id).raw == row.raw


def _deliver(session: Session) -> Any:
    session.commit()
    return deliver(now=NOW)


@pytest.mark.parametrize(
    "base", ["http://127.0.0.1:8080", LONG_BASE, LONG_BASE + "/x", LONG_BASE + "/xy"]
)
def test_mail_built_by_the_email_package_as_before_the_change(efa_env: Path, base: str) -> None:
    """Rows before the change came from the email package: every fold is found and replaced."""
    from efa_rollout.mail.message import Recipient, build_message, message_bytes
    from efa_rollout.mail.personal_link import PLACEHOLDER
    from efa_rollout.mail.render import RenderedMail
    from tests.test_mail_link_at_rest import _decoded_texts

    token = "Zq3-_x" * 5 + "k9"
    url = f"{base}/p/{token}"
    rendered = RenderedMail(
        "Erinnerung",
        f"Ihr Zugang zum Portal (gültig bis 01.08.2025):\n{url}\n",
        f'<p>Zugang:<br><a href="{url}">{url}</a></p>',
    )
    raw = message_bytes(
        build_message(
            rendered,
            to=[Recipient("hauptamt@essingen.example")],
            message_id="<viba-ostalbkreis.08136019.reminder.1@efa.example>",
            date=NOW,
            kind="reminder",
        )
    )
    assert raw.count(token.encode()) < 3  # a soft line break inside at least one of them
    found = stored_tokens(raw)
    assert [t for *_, t in found] == [token] * 3
    scrubbed = replace_tokens(raw, [(s, e) for s, e, _ in found], PLACEHOLDER)
    assert count_placeholders(scrubbed) == 3 and insert_token(scrubbed, token) == raw
    assert not any(token in text for text in _decoded_texts(scrubbed))
    assert sum(text.count(f"{base}/p/{PLACEHOLDER}") for text in _decoded_texts(scrubbed)) == 3
