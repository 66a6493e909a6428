"""Delivery reports for the tests: the written samples filled in, and generated RFC 3464 reports."""

from __future__ import annotations

import secrets
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "data" / "bounces"
SENDER = "egov-koordination@ostalbkreis.example"


def sample(
    name: str, *, message_id: str, recipient: str, sender: str = SENDER, key: str | None = None
) -> bytes:
    """The sample NAME (file stem) with its placeholders filled, CRLF line ends."""
    text = (SAMPLES / f"{name}.eml").read_text(encoding="utf-8")
    for placeholder, value in (
        ("@@MESSAGE_ID@@", message_id),
        ("@@RECIPIENT@@", recipient),
        ("@@SENDER@@", sender),
        ("@@KEY@@", key or secrets.token_hex(8)),
    ):
        text = text.replace(placeholder, value)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def rfc3464(
    *,
    message_id: str | None,
    recipient: str,
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str = "smtp; 550 5.1.1 User unknown",
    sender: str = SENDER,
    to: str | None = None,
) -> bytes:
    """A generated RFC 3464 report (multipart/report; report-type=delivery-status)."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "Mail Delivery System <MAILER-DAEMON@relay.ostalbkreis.example>"
    report["To"] = to or sender
    report["Subject"] = "Delivery Status Notification"
    report["Date"] = formatdate(localtime=False)
    report["Message-ID"] = f"<{secrets.token_hex(12)}@relay.ostalbkreis.example>"
    report["Auto-Submitted"] = "auto-generated"
    report.attach(MIMEText(f"Die Nachricht an {recipient} konnte nicht zugestellt werden.\n"))
    status_part = MIMEBase("message", "delivery-status")
    per_message = Message()
    per_message["Reporting-MTA"] = "dns; relay.ostalbkreis.example"
    per_recipient = Message()
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Diagnostic-Code"] = diagnostic
    status_part.set_payload([per_message, per_recipient])
    report.attach(status_part)
    if message_id:
        headers = EmailMessage()
        headers["From"] = sender
        headers["To"] = recipient
        headers["Subject"] = "Informationsanfrage"
        headers["Message-ID"] = message_id
        part = MIMEText(headers.as_string(), "rfc822-headers")
        report.attach(part)
    return report.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
