"""`efa mail ...` through the CLI runner, and the local sink."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, func, select
from typer.testing import CliRunner

from efa_rollout.cli import app
from efa_rollout.errors import UserError
from efa_rollout.mail.sink import start_sink
from efa_rollout.settings import get_settings
from models import OutboxMessage
from tests.mail_support import setup_one
from tests.smtp_fault_server import free_port

runner = CliRunner()


def _efa(*args: str) -> tuple[int, str]:
    """Exit code and output; a UserError as `efa` would print it."""
    result = runner.invoke(app, ["mail", *args])
    if isinstance(result.exception, UserError):
        return result.exception.exit_code, result.output + result.exception.render()
    return result.exit_code, result.output


def test_test_mail_goes_to_the_folder_and_shows_in_the_outbox(efa_env: Path) -> None:
    code, output = _efa("test", "pruefung@gemeinde-böbingen.de", "--kind", "reminder")
    assert code == 0, output
    assert "Testmail 1 eingereiht: [TEST] ViBa BW – Erinnerung" in output
    assert "1 zugestellt" in output
    assert len(list(get_settings().effective_mail_dir.glob("*.eml"))) == 1
    code, output = _efa("outbox", "--json")
    [row] = json.loads(output)
    assert row["status"] == "sent" and row["is_test"] and "raw" not in row
    code, output = _efa("outbox", "--status", "sent")
    assert code == 0 and "pruefung@xn--gemeinde-bbingen-vwb.de" in output
    code, output = _efa("outbox", "--status", "verschickt")
    assert code != 0


def test_retry_cancel_and_deliver(efa_env: Path, session: Session) -> None:
    code, output = _efa("test", "a@x.example", "--no-send")
    assert code == 0 and "eingereiht" in output
    code, output = _efa("retry", "1")
    assert "Status »queued« kann nicht erneut gesendet werden" in output
    code, output = _efa("cancel", "1", "7")
    assert code == 1 and "1 Mail(s) storniert: 1." in output and "7: gibt es nicht" in output
    _efa("test", "b@x.example", "--no-send")
    code, output = _efa("deliver")
    assert code == 0 and "1 Nachrichten bearbeitet" in output
    code, output = _efa("retry")
    assert code != 0 and "IDs oder --status" in output


def test_preview_writes_html_and_queues_nothing(
    efa_env: Path, session: Session, tmp_path: Path
) -> None:
    campaign, _, municipality = setup_one(session)
    ags = municipality.ags
    target = tmp_path / "vorschau.html"
    code, output = _efa(
        "preview",
        campaign.id,
        "--municipality",
        ags,
        "--kind",
        "reminder",
        "--out",
        str(target),
    )
    assert code == 0, output
    assert "Subject: ViBa BW – Erinnerung" in output
    assert "Message-ID: <viba-ostalbkreis.08136019.reminder.1@" in output
    assert f"HTML-Fassung: {target.resolve()}" in output
    assert "<html" in target.read_text(encoding="utf-8")
    session.rollback()
    assert session.exec(select(func.count()).select_from(OutboxMessage)).one() == 0
    # End this read before the next command: on SQLite every transaction takes the write lock
    # (BEGIN IMMEDIATE), and reading `municipality.ags` after the rollback would reload it in a
    # new one, so the command waited out the 30 s busy timeout and failed for the wrong reason.
    session.rollback()
    code, output = _efa("preview", "gibt-es-nicht", "--municipality", ags, "--kind", "reminder")
    assert code != 0 and "Die Kampagne »gibt-es-nicht« gibt es nicht." in output, output


def test_sink_stores_each_message_and_reports_it(tmp_path: Path) -> None:
    lines: list[str] = []
    port = free_port()
    controller = start_sink(tmp_path / "sink", port=port, echo=lines.append)
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            for _ in range(2):  # the same message twice: two files, so duplicates stay visible
                client.sendmail(
                    "a@x.example",
                    ["b@y.example"],
                    b"Message-ID: <1@x>\r\nSubject: Hallo\r\n\r\nText\r\n",
                )
    finally:
        controller.stop()
    assert len(list((tmp_path / "sink").glob("*.eml"))) == 2
    assert len(lines) == 2 and "<1@x>" in lines[0] and "b@y.example" in lines[0]


def test_mail_modules_do_not_import_prefect() -> None:
    code = (
        "import sys; import efa_rollout.cli.mail, efa_rollout.mail.delivery, "
        "efa_rollout.services.outbox, efa_rollout.mail.transport, efa_rollout.mail.sink; "
        "sys.exit('prefect' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
