"""Bounce processing against a real Dovecot on loopback: reports, auto-replies, unrelated mail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from efa_rollout.domain.bounces import parse
from efa_rollout.errors import UserError
from efa_rollout.mail.bounce_mailbox import BounceMailbox, parse_imap_url
from efa_rollout.mail.delivery import deliver
from efa_rollout.services.bounces import process_bounces
from efa_rollout.services.outbox import queue_campaign_mail
from efa_rollout.settings import get_settings
from models import BounceReport, Contact, Event, OutboxMessage, Suppression
from tests.bounce_samples import SENDER, rfc3464, sample
from tests.imap_support import Dovecot, dovecot_available, start_dovecot
from tests.mail_support import (
    NOW,
    add_campaign,
    add_contact,
    add_enrolment,
    add_municipality,
    queue_request,
)

FOLDER = "efa-verarbeitet"
HAUPTAMT = "hauptamt@essingen.example"
OTHER = "buergermeister@essingen.example"
UNRELATED = ("unrelated_reply", "unrelated_holiday", "unrelated_newsletter")

#: Sample → (kind of the stored report, contact flagged, address suppressed).
EXPECTED = {
    "exchange_ndr": ("permanent", True, True),
    "postfix_user_unknown": ("permanent", True, True),
    "gmail_failure": ("permanent", True, True),
    "qmail_failure": ("permanent", True, True),
    "postfix_delayed": ("transient", False, False),
    "exchange_mailbox_full": ("transient", False, False),
    "vacation_outlook": ("auto_reply", False, False),
    "vacation_plain": ("auto_reply", False, False),
}


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot for the module; each test empties it."""
    if not dovecot_available():
        if os.environ.get("CI"):
            pytest.fail("dovecot-imapd fehlt in CI: .ci/run hätte es installieren müssen")
        pytest.skip("dovecot-imapd fehlt (.ci/run installiert es)")
    server = start_dovecot()
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot: Dovecot, efa_env: Path, monkeypatch: pytest.MonkeyPatch) -> Dovecot:
    """An empty mailbox, and settings pointing at it (plain IMAP on loopback)."""
    dovecot.clear()
    monkeypatch.setenv("EFA_BOUNCE_IMAP_URL", dovecot.url())
    get_settings.cache_clear()
    return dovecot


def _sent_request(session: Session) -> OutboxMessage:
    """Essingen (Hauptamt + Bürgermeister), its information request queued and delivered."""
    row = queue_request(session, HAUPTAMT, OTHER, roles={OTHER: "Bürgermeister"})
    assert row.recipients == [HAUPTAMT]
    assert deliver(now=NOW).attempted == 1
    session.refresh(row)
    assert row.status == "sent"
    session.commit()  # SQLite: a reading transaction holds the write lock (BEGIN IMMEDIATE)
    return row


def _state(session: Session) -> dict[str, Any]:
    """Everything bounce processing may change, to compare two runs."""
    session.expire_all()
    state = {
        "events": session.exec(select(func.count()).select_from(Event)).one(),
        "reports": session.exec(select(func.count()).select_from(BounceReport)).one(),
        "suppressed": sorted(session.exec(select(Suppression.email)).all()),
        "outbox": [
            (r.id, r.status, r.recipient_status, r.last_error)
            for r in session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        ],
        "contacts": [
            (c.email, c.delivery_failed_at, c.delivery_failure)
            for c in session.exec(select(Contact).order_by(Contact.id)).all()
        ],
    }
    session.commit()
    return state


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_report_type_ends_in_the_right_state(
    mailbox: Dovecot, session: Session, name: str
) -> None:
    row = _sent_request(session)
    unrelated = [sample(u, message_id=row.message_id, recipient=HAUPTAMT) for u in UNRELATED]
    mailbox.append([sample(name, message_id=row.message_id, recipient=HAUPTAMT), *unrelated])
    before_unrelated = mailbox.messages()[1:]

    run = process_bounces(now=NOW + timedelta(hours=1))

    kind, flagged, suppressed = EXPECTED[name]
    assert run.seen == 4 and run.counts[kind] == 1 and run.counts["unrecognised"] == 3
    assert run.moved == 1
    session.expire_all()
    report = session.exec(select(BounceReport)).one()
    assert (report.kind, report.outbox_id, report.recipient) == (kind, row.id, HAUPTAMT)
    contact = session.exec(select(Contact).where(Contact.email == HAUPTAMT)).one()
    assert (contact.delivery_failed_at is not None) is flagged
    active = session.exec(select(Suppression).where(Suppression.lifted_at.is_(None))).all()
    assert [s.email for s in active] == ([HAUPTAMT] if suppressed else [])
    stored = session.get(OutboxMessage, row.id)
    assert stored is not None
    events = {e.kind: e for e in session.exec(select(Event).where(Event.actor == "unzustellbar"))}
    if kind == "permanent":
        assert stored.status == "failed_permanently"
        assert stored.recipient_status[HAUPTAMT]["status"] == "bounced"
        assert report.status_code and report.status_code in events["mail_bounced"].reason
        request = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "address_request")
        ).one()
        assert request.recipients == [OTHER]
        assert HAUPTAMT in request.raw.decode("utf-8", errors="replace")
    elif kind == "transient":
        assert stored.status == "sent"
        assert stored.recipient_status[HAUPTAMT]["transient_reports"] == 1
        assert "Mailbox full" in events["mail_bounced_transient"].reason or "mailbox full" in (
            events["mail_bounced_transient"].reason
        )
    else:
        assert stored.status == "sent"
        reason = events["auto_reply_received"].reason
        if name == "vacation_outlook":
            assert reason.startswith("Abwesenheitsnotiz bis 18.12.2026")
        else:
            assert reason.startswith("Automatische Antwort")
    # Processed: moved, not deleted; unrelated: untouched (same bytes, still unseen).
    assert len(mailbox.messages(FOLDER)) == 1
    assert mailbox.messages() == before_unrelated
    assert all(b"\\Seen" not in flags for _, flags, _ in mailbox.messages())

    state = _state(session)
    again = process_bounces(now=NOW + timedelta(hours=2))
    assert again.moved == 0 and again.counts["unrecognised"] == 3
    assert _state(session) == state
    assert mailbox.messages() == before_unrelated


@pytest.mark.parametrize(
    ("status", "action", "kind"),
    [
        ("5.1.1", "failed", "permanent"),
        ("5.7.1", "failed", "permanent"),
        ("5.2.2", "failed", "transient"),
        ("4.2.2", "failed", "transient"),
        ("4.4.7", "delayed", "transient"),
    ],
)
def test_generated_rfc3464_reports_by_status(
    mailbox: Dovecot, session: Session, status: str, action: str, kind: str
) -> None:
    row = _sent_request(session)
    mailbox.append(
        [
            rfc3464(
                message_id=row.message_id,
                recipient=HAUPTAMT,
                status=status,
                action=action,
                diagnostic=f"smtp; 550 {status} Testmeldung",
            )
        ]
    )
    run = process_bounces(now=NOW)
    assert run.counts[kind] == 1
    session.expire_all()
    contact = session.exec(select(Contact).where(Contact.email == HAUPTAMT)).one()
    assert (contact.delivery_failed_at is not None) is (kind == "permanent")


def test_transient_reports_flag_after_threshold_within_window(
    mailbox: Dovecot, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFA_BOUNCE_TRANSIENT_THRESHOLD", "2")
    monkeypatch.setenv("EFA_BOUNCE_TRANSIENT_WINDOW_DAYS", "3")
    get_settings.cache_clear()
    message_id = _sent_request(session).message_id

    def one_report(at_days: int) -> Contact:
        mailbox.append([rfc3464(message_id=message_id, recipient=HAUPTAMT, status="4.2.2")])
        process_bounces(now=NOW + timedelta(days=at_days))
        session.expire_all()
        contact = session.exec(select(Contact).where(Contact.email == HAUPTAMT)).one()
        session.commit()
        return contact

    assert one_report(0).delivery_failed_at is None
    assert one_report(5).delivery_failed_at is None  # the first one is outside the window now
    flagged = one_report(6)
    assert flagged.delivery_failed_at is not None
    assert flagged.delivery_failure.startswith("2 vorübergehende Fehler in 3 Tagen")
    assert session.exec(select(Suppression)).first() is None  # transient: flagged, not suppressed


def test_verp_envelope_sender_matches_without_message_id(
    mailbox: Dovecot, session: Session
) -> None:
    row = _sent_request(session)
    local, domain = SENDER.split("@")
    mailbox.append(
        [
            rfc3464(
                message_id=None,
                recipient="weitergeleitet@essingen.example",
                to=f"{local}+b{row.id}@{domain}",
            )
        ]
    )
    run = process_bounces(now=NOW)
    assert run.counts["permanent"] == 1
    session.expire_all()
    report = session.exec(select(BounceReport)).one()
    # The relay names the forwarded address; the row's only recipient is the one suppressed.
    assert (report.outbox_id, report.recipient) == (row.id, HAUPTAMT)


def test_report_about_someone_elses_mail_stays(mailbox: Dovecot, session: Session) -> None:
    _sent_request(session)
    foreign = rfc3464(message_id="<fremd@example.org>", recipient="niemand@anderswo.example")
    mailbox.append([foreign])
    run = process_bounces(now=NOW)
    assert run.counts["unmatched"] == 1 and run.moved == 0
    assert [raw for _, _, raw in mailbox.messages()] == [foreign]
    assert session.exec(select(BounceReport)).first() is None


def test_dry_run_changes_nothing(mailbox: Dovecot, session: Session) -> None:
    row = _sent_request(session)
    mailbox.append([sample("postfix_user_unknown", message_id=row.message_id, recipient=HAUPTAMT)])
    state = _state(session)
    run = process_bounces(now=NOW, dry_run=True)
    assert run.counts["permanent"] == 1 and run.moved == 0
    assert run.summary().startswith("Probelauf")
    assert _state(session) == state
    assert len(mailbox.messages()) == 1 and mailbox.messages(FOLDER) == []


def test_committed_but_not_moved_is_only_moved_next_time(
    mailbox: Dovecot, session: Session
) -> None:
    """A crash between commit and MOVE: the report is back in INBOX; nothing happens twice."""
    row = _sent_request(session)
    report = sample("exchange_ndr", message_id=row.message_id, recipient=HAUPTAMT)
    mailbox.append([report])
    process_bounces(now=NOW)
    state = _state(session)
    mailbox.append([report])  # as if the MOVE had never happened
    again = process_bounces(now=NOW + timedelta(minutes=15))
    assert again.counts["already"] == 1 and again.moved == 1
    assert _state(session) == state
    assert mailbox.messages() == [] and len(mailbox.messages(FOLDER)) == 2


@pytest.mark.slow
def test_sigkill_mid_run_loses_nothing(mailbox: Dovecot, session: Session, efa_env: Path) -> None:
    """Kill `efa mail bounces` while it works; the next run finishes, each report once."""
    campaign = add_campaign(session)
    rows = []
    for index in range(400):
        ags = f"08136{index:03d}"
        municipality = add_municipality(session, ags=ags, name=f"Gemeinde {index}")
        add_contact(session, ags, f"hauptamt{index}@gemeinde{index}.example")
        enrolment = add_enrolment(session, campaign, ags)
        rows.append(
            queue_campaign_mail(
                session,
                campaign=campaign,
                enrolment=enrolment,
                municipality=municipality,
                kind="information_request",
                sequence=1,
                now=NOW,
            )
        )
    session.commit()
    reports = [
        rfc3464(message_id=r.message_id, recipient=r.recipients[0]) for r in rows if r is not None
    ]
    unrelated = [sample(u, message_id="<x@y>", recipient=HAUPTAMT) for u in UNRELATED]
    mailbox.append(reports + unrelated)
    command = [str(Path(sys.executable).parent / "efa"), "mail", "bounces"]
    process = subprocess.Popen(
        command, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if len(mailbox.messages(FOLDER)) >= 100:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    moved_before_kill = len(mailbox.messages(FOLDER))
    assert 0 < moved_before_kill < len(reports), "not killed mid-run; change the number of reports"

    finish = subprocess.run(
        command, env={**os.environ}, capture_output=True, text=True, check=False
    )
    assert finish.returncode == 0, finish.stderr
    session.expire_all()
    keys = session.exec(select(BounceReport.report_key)).all()
    assert len(keys) == len(set(keys)) == len(reports)
    assert len(mailbox.messages(FOLDER)) == len(reports)
    assert sorted(raw for _, _, raw in mailbox.messages()) == sorted(unrelated)
    flagged = session.exec(
        select(func.count()).where(Contact.delivery_failed_at.is_not(None))
    ).one()
    assert flagged == len(reports)
    assert session.exec(select(func.count()).select_from(Suppression)).one() == len(reports)


def test_tls_and_starttls(mailbox: Dovecot) -> None:
    for url in (
        mailbox.url(scheme="imaps", query="verify=0"),
        mailbox.url(scheme="imap", query="starttls=1&verify=0"),
    ):
        with BounceMailbox(parse_imap_url(url)) as box:
            assert box.uids() == []
    verified = parse_imap_url(mailbox.url(scheme="imaps", query=""))
    with pytest.raises(UserError, match="nicht erreichbar"), BounceMailbox(verified):
        pass  # self-signed certificate: refused when verified
    with pytest.raises(UserError, match="ohne TLS"):
        parse_imap_url("imap://u:p@mail.example.org/INBOX?starttls=0")


def test_unset_url_is_a_clear_error(efa_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EFA_BOUNCE_IMAP_URL", raising=False)
    get_settings.cache_clear()
    with pytest.raises(UserError, match="EFA_BOUNCE_IMAP_URL ist nicht gesetzt"):
        process_bounces()


def test_samples_parse_as_documented() -> None:
    """Each sample in tests/data/bounces is recognised as its README says (no server needed)."""
    for name, (kind, _, _) in EXPECTED.items():
        report = parse(sample(name, message_id="<m@x>", recipient=HAUPTAMT))
        assert report.kind == kind, name
        if kind != "auto_reply":
            assert [r.address for r in report.recipients] == [HAUPTAMT], name
            assert report.original_message_id == "<m@x>", name
    for name in UNRELATED:
        assert parse(sample(name, message_id="<m@x>", recipient=HAUPTAMT)).kind == "unrecognised"


def _efa(*args: str) -> str:
    from typer.testing import CliRunner

    from efa_rollout.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def test_lifecycle_only_address_bounces(mailbox: Dovecot, session: Session) -> None:
    """One address, it bounces: unreachable in status and weekly report; no more mail to it."""
    from efa_rollout.reports.rollup import campaign_rollup
    from efa_rollout.reports.weekly import build_weekly_report, queue_weekly_mail

    campaign = add_campaign(session)
    municipality = add_municipality(session)
    add_contact(session, municipality.ags, HAUPTAMT)
    enrolment = add_enrolment(session, campaign, municipality.ags)

    def queue(sequence: int) -> OutboxMessage | None:
        row = queue_campaign_mail(
            session,
            campaign=campaign,
            enrolment=enrolment,
            municipality=municipality,
            kind="reminder" if sequence else "information_request",
            sequence=sequence or 1,
            now=NOW + timedelta(days=1),
        )
        session.commit()
        return row

    first = queue(0)
    assert first is not None
    message_id = first.message_id
    deliver(now=NOW)
    mailbox.append([sample("postfix_user_unknown", message_id=message_id, recipient=HAUPTAMT)])

    run = process_bounces(now=NOW + timedelta(minutes=15))  # one processing run
    assert run.counts["permanent"] == 1

    as_of = NOW + timedelta(minutes=30)
    rollup = campaign_rollup(session, campaign.id, as_of=as_of)
    assert [(w.name, w.reason) for w in rollup.without_contact] == [
        ("Essingen", "alle Adressen unzustellbar")
    ]
    session.commit()
    status = _efa("campaign", "status", campaign.id, "--as-of", as_of.isoformat())
    assert "nicht erreichbar: Essingen (08136019) – alle Adressen unzustellbar" in status
    _, weekly = build_weekly_report(session, campaign.id, as_of=as_of)
    weekly_mail = queue_weekly_mail(session, rollup, weekly.files, now=as_of)
    assert weekly_mail is not None
    section = weekly.markdown.split("## Ohne funktionierende Ansprechperson", 1)[1]
    assert "Essingen (08136019)" in section.split("##", 1)[0]
    assert "alle Adressen unzustellbar" in weekly_mail.raw.decode("utf-8", errors="replace")
    session.commit()

    # No further mail: the contact is flagged, and the same address added again is suppressed.
    assert queue(1) is None
    add_contact(session, municipality.ags, HAUPTAMT, role="Bauamt")
    session.commit()
    assert queue(2) is None
    suppressed = session.exec(select(Event).where(Event.kind == "mail_recipient_suppressed")).one()
    assert suppressed.data == {"kind": "reminder", "sequence": 2, "recipient": HAUPTAMT}
    session.commit()
    outbox = _efa("mail", "outbox")
    assert f"Nicht eingestellt an {HAUPTAMT} (gesperrt)" in outbox
    assert f"efa contacts unsuppress {HAUPTAMT}" in outbox

    # The coordinator lifts it: mail flows again.
    assert "Sperre für hauptamt@essingen.example aufgehoben; 2 Ansprechperson(en)" in _efa(
        "contacts", "unsuppress", HAUPTAMT
    )
    again = queue(3)
    assert again is not None and again.recipients == [HAUPTAMT]
    assert f"Nicht eingestellt an {HAUPTAMT}" not in _efa("mail", "outbox")


def test_cli_bounces_dry_run_and_run(mailbox: Dovecot, session: Session) -> None:
    row = _sent_request(session)
    mailbox.append([sample("gmail_failure", message_id=row.message_id, recipient=HAUPTAMT)])
    dry = _efa("mail", "bounces", "--dry-run")
    assert "Probelauf" in dry and "1 dauerhaft unzustellbar" in dry
    assert len(mailbox.messages()) == 1
    done = _efa("mail", "bounces")
    assert "1 verschoben" in done and "efa-verarbeitet" in done
    assert mailbox.messages() == [] and len(mailbox.messages(FOLDER)) == 1


def test_unsuppress_unknown_address_is_a_clear_error(efa_env: Path) -> None:
    from typer.testing import CliRunner

    from efa_rollout.cli import app

    result = CliRunner().invoke(app, ["contacts", "unsuppress", "niemand@example.org"])
    assert result.exit_code != 0
    assert "Die Adresse niemand@example.org ist nicht gesperrt." in str(result.exception)


def test_catalog_runs_bounces_every_15_minutes() -> None:
    from deployments.catalog import CATALOG

    spec = next(s for s in CATALOG if s.entrypoint == "flows.process_bounces:process_bounces")
    assert spec.crons == ("*/15 * * * *",)
    assert spec.load_flow().name == "process-bounces"


@pytest.mark.prefect
@pytest.mark.slow
def test_flow_publishes_unreachable_municipalities(
    prefect_api: None, mailbox: Dovecot, session: Session
) -> None:
    import asyncio

    from prefect.client.orchestration import get_client

    from flows.process_bounces import process_bounces as flow

    row = _sent_request(session)
    mailbox.append([sample("exchange_ndr", message_id=row.message_id, recipient=HAUPTAMT)])
    # The other contact answers for Essingen, so flag it too: nobody left to write to.
    with Session(session.get_bind()) as other:
        contact = other.exec(select(Contact).where(Contact.email == OTHER)).one()
        contact.delivery_failed_at, contact.delivery_failure = NOW, "550 test"
        other.add(contact)
        other.commit()
    result = flow(as_of=NOW + timedelta(minutes=15))
    assert result["counts"]["permanent"] == 1
    assert [u["Gemeinde"] for u in result["unreachable"]] == ["Essingen"]

    async def artifacts() -> dict[str, Any]:
        async with get_client() as client:
            return {a.key: a for a in await client.read_artifacts()}

    found = asyncio.run(artifacts())
    table = found["gemeinden-ohne-erreichbare-ansprechperson"]
    assert "Essingen" in str(table.data)
    assert (
        "Ohne erreichbare Ansprechperson".lower()
        in str(found["unzustellbar-zusammenfassung"].data).lower()
    )


def test_encoded_subject_and_german_date_words() -> None:
    raw = (
        b"From: =?utf-8?q?B=C3=BCrgermeisteramt?= <bgm@essingen.example>\r\n"
        b"To: egov-koordination@ostalbkreis.example\r\n"
        b"Subject: =?utf-8?q?Automatische_Antwort=3A_Einf=C3=BChrung?=\r\n"
        b"Message-ID: <oof-1@essingen.example>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Ich bin bis zum 3. Januar 2027 im Urlaub.\r\n"
    )
    report = parse(raw)
    assert report.kind == "auto_reply" and report.subject == "Automatische Antwort: Einführung"
    assert (
        report.absent_until == "3. Januar 2027" and report.auto_reply_from == "bgm@essingen.example"
    )


def test_verp_sender_on_the_wire_then_matched(
    mailbox: Dovecot, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EFA_BOUNCE_VERP=1: MAIL FROM carries the outbox id; a bare report finds its row by it."""
    from tests.smtp_fault_server import FaultServer

    server = FaultServer().start()
    try:
        monkeypatch.setenv("EFA_SMTP_URL", server.url)
        monkeypatch.setenv("EFA_BOUNCE_VERP", "1")
        get_settings.cache_clear()
        row = _sent_request(session)
        assert server.wait_for(1) == 1
        envelope_sender = server.handler.stored[0].mail_from
    finally:
        server.stop()
    local, domain = SENDER.split("@")
    assert envelope_sender == f"{local}+b{row.id}@{domain}"
    alias = "posteingang-intern@essingen.example"  # no Message-ID, no known address: only VERP
    mailbox.append([rfc3464(message_id=None, recipient=alias, to=envelope_sender)])
    assert process_bounces(now=NOW).counts["permanent"] == 1
    session.expire_all()
    assert session.exec(select(BounceReport.outbox_id)).one() == row.id


@pytest.mark.parametrize(
    ("status", "action", "text", "kind"),
    [
        ("5.1.1", "failed", "", "permanent"),
        ("5.1.10", "failed", "", "permanent"),
        ("5.2.2", "failed", "", "transient"),  # mailbox full: the address exists
        ("4.2.2", "failed", "", "transient"),
        ("5.1.1", "delayed", "", "transient"),  # the action wins: still being retried
        (None, None, "452 too many recipients", "transient"),
        (None, None, "550 no such user", "permanent"),
        (None, None, "Postfach ist voll", "transient"),
        (None, None, "unklar", "permanent"),
    ],
)
def test_status_kind_rules(status: str | None, action: str | None, text: str, kind: str) -> None:
    from efa_rollout.domain.bounces import status_kind

    assert status_kind(status, action, text) == kind
