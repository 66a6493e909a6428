"""Benchmark: process N delivery reports from a real Dovecot on loopback (default 1,000).

Starts a throw-away Dovecot (tests/imap_support.py), a fresh SQLite database (or
--database-url), one campaign with N municipalities, one contact and one sent information
request each; fills the mailbox with one report per mail, cycling through the report types of
tests/data/bounces (RFC 3464 from Exchange, Postfix, a large provider; qmail-style plain text;
delayed/mailbox full; vacation replies), and times one `process_bounces` run.

    .venv/bin/python bench/bench_bounces.py [--reports 1000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

KINDS = (
    "exchange_ndr",
    "postfix_user_unknown",
    "gmail_failure",
    "qmail_failure",
    "postfix_delayed",
    "exchange_mailbox_full",
    "vacation_outlook",
    "generated",
)


def _fill_database(count: int) -> list[tuple[str, str]]:
    """N municipalities with one contact and one sent mail each; (Message-ID, recipient)."""
    from sqlalchemy import insert
    from sqlmodel import Session

    from efa_rollout.db import get_engine
    from efa_rollout.definitions import get_definition
    from efa_rollout.mail.message import make_message_id
    from models import Campaign, Contact, Enrolment, Municipality, OutboxMessage

    now = datetime.now(UTC)
    definition = get_definition("viba-bw")
    go_live = now.date().replace(year=now.year + 1)
    pairs = []
    with get_engine().begin() as conn:
        conn.execute(
            insert(Campaign),
            [
                {
                    "id": "bench",
                    "template": "viba-bw",
                    "title": "ViBa BW (Benchmark)",
                    "service": "ViBa BW",
                    "area_code": "08136",
                    "go_live": go_live,
                    "dates": definition.resolve_dates(go_live),
                    "definition": definition.model_dump(mode="json"),
                    "status": "running",
                    "created_at": now,
                }
            ],
        )
        municipalities, contacts, enrolments, outbox = [], [], [], []
        for index in range(count):
            ags = f"08{index:06d}"
            address = f"hauptamt@gemeinde{index}.example"
            message_id = make_message_id(
                campaign_id="bench",
                ags=ags,
                kind="information_request",
                sequence=1,
                domain="ostalbkreis.example",
            )
            pairs.append((message_id, address))
            municipalities.append(
                {
                    "ags": ags,
                    "name": f"Gemeinde {index}",
                    "district_code": ags[:5],
                    "state_code": "08",
                    "attributes": {},
                    "updated_at": now,
                }
            )
            contacts.append({"ags": ags, "role": "Hauptamt", "email": address, "updated_at": now})
            enrolments.append(
                {
                    "campaign_id": "bench",
                    "ags": ags,
                    "stage": "information_collection",
                    "stage_entered_at": now,
                    "status": "active",
                }
            )
            outbox.append(
                {
                    "campaign_id": "bench",
                    "ags": ags,
                    "kind": "information_request",
                    "sequence": 1,
                    "message_id": message_id,
                    "sender": "egov-koordination@ostalbkreis.example",
                    "recipients": [address],
                    "cc": [],
                    "subject": "Informationsanfrage",
                    "raw": b"",
                    "status": "sent",
                    "queued_at": now,
                    "sent_at": now,
                    "recipient_status": {address: {"status": "sent"}},
                    "meta": {},
                }
            )
    with Session(get_engine()) as session:
        for table, rows in (
            (Municipality, municipalities),
            (Contact, contacts),
            (Enrolment, enrolments),
            (OutboxMessage, outbox),
        ):
            session.add_all([table(**row) for row in rows])
            session.flush()
        session.commit()
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=1000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    from tests.bounce_samples import rfc3464, sample
    from tests.imap_support import start_dovecot

    work = Path(tempfile.mkdtemp(prefix="efa-bench-bounces-"))
    os.environ["EFA_DATA_DIR"] = str(work / "data")
    if args.database_url:
        os.environ["EFA_DATABASE_URL"] = args.database_url
    os.environ.pop("EFA_SMTP_URL", None)
    server = start_dovecot()
    os.environ["EFA_BOUNCE_IMAP_URL"] = server.url()
    try:
        from efa_rollout import db
        from efa_rollout.services.bounces import process_bounces
        from efa_rollout.settings import get_settings

        get_settings.cache_clear()
        db.upgrade(db.get_engine())
        started = time.perf_counter()
        pairs = _fill_database(args.reports)
        setup = time.perf_counter() - started
        messages = []
        for index, (message_id, address) in enumerate(pairs):
            kind = KINDS[index % len(KINDS)]
            if kind == "generated":
                messages.append(rfc3464(message_id=message_id, recipient=address))
            else:
                messages.append(sample(kind, message_id=message_id, recipient=address))
        started = time.perf_counter()
        server.append(messages)
        appended = time.perf_counter() - started

        started = time.perf_counter()
        run = process_bounces()
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = process_bounces()
        second = time.perf_counter() - started
        counts = Counter(run.counts)
        backend = db.get_engine().dialect.name
        print(f"Datenbank: {backend}; Dovecot auf 127.0.0.1:{server.port} (IMAP, ohne TLS)")
        print(
            f"Aufbau: {args.reports} Gemeinden/Mails in {setup:.2f} s; APPEND in {appended:.2f} s"
        )
        print(run.summary())
        print(
            f"Verarbeitet: {run.seen} Nachrichten in {seconds:.2f} s = {run.seen / seconds:.0f} Nachrichten/s"
        )
        print(f"  je Art: {dict(counts)}")
        print(f"Zweiter Lauf (nichts mehr zu tun): {again.seen} Nachrichten in {second:.2f} s")
        assert run.moved == args.reports - counts["unmatched"] - counts["unrecognised"]
    finally:
        server.stop()
        from efa_rollout import db

        db.reset_engines()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
