"""Pure rules for delivery reports: recognise, read and classify bounces and auto-replies.

Nothing here touches IMAP or the database: a raw message goes in, a `Report` comes out.
Recognition order matters: an RFC 3464 report carries `Auto-Submitted: auto-generated` too,
so delivery reports are checked before auto-replies.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses
from typing import Any

#: Report kinds (`Report.kind`).
PERMANENT = "permanent"
TRANSIENT = "transient"
AUTO_REPLY = "auto_reply"
UNRECOGNISED = "unrecognised"

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_SMTP_REPLY = re.compile(r"(?<![\d.])([45]\d\d)(?:[ -]|$)", re.MULTILINE)
_MESSAGE_ID = re.compile(r"^\s*Message-ID:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)
_ADDRESS = re.compile(r"<?([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?")
_VERP = re.compile(r"^(?P<local>[^+@]+)\+b(?P<outbox>\d+)@(?P<domain>.+)$")
#: Subjects auto-responders start with (Outlook/Exchange in German and English, others).
_AUTO_SUBJECT = re.compile(
    r"^\s*(automatische antwort|abwesenheitsnotiz|abwesend|out of (the )?office|"
    r"auto(matic)?[ -]?reply|autoreply|auto:|r[ée]ponse automatique|vacation reply)",
    re.IGNORECASE,
)
_UNTIL = re.compile(
    r"\b(?:bis|until|till|back on|zurück am|wieder (?:erreichbar |im (?:haus|büro) )?ab)\s+"
    r"(?:(?:einschließlich|einschl\.|zum|inklusive|inkl\.|voraussichtlich|am)\s+)*"
    r"(?:(?:montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag),?\s+(?:den\s+)?)?"
    r"(\d{1,2}\.\s?\d{1,2}\.(?:\d{2,4})?|\d{1,2}\.\s?(?:januar|februar|märz|april|mai|juni|juli|"
    r"august|september|oktober|november|dezember)(?:\s+\d{4})?|\d{4}-\d{2}-\d{2})",
    re.IGNORECASE,
)
#: Phrases of non-standard reports (Exchange's NDR, qmail, old Postfix/Sendmail, providers).
_BOUNCE_SUBJECT = re.compile(
    r"(undeliver|unzustellbar|delivery (status notification|has failed|failure)|"
    r"returned mail|mail delivery (failed|system)|failure notice|nicht zugestellt|"
    r"zustellung fehlgeschlagen|delivery failed|non[- ]?delivery)",
    re.IGNORECASE,
)
_PERMANENT_TEXT = re.compile(
    r"(user unknown|unknown user|no such user|mailbox unavailable|does not exist|"
    r"address rejected|recipient rejected|not found|existiert nicht|unbekannt|"
    r"recipient address rejected|invalid recipient|account (is )?disabled)",
    re.IGNORECASE,
)
_TRANSIENT_TEXT = re.compile(
    r"(mailbox (is )?full|over quota|quota exceeded|postfach (ist )?voll|delayed|"
    r"will (continue to )?retry|temporar|vorübergehend|still trying)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RecipientFailure:
    """One recipient a report speaks about."""

    address: str
    kind: str
    status: str | None
    diagnostic: str


@dataclass
class Report:
    """What one message in the bounce mailbox says."""

    kind: str
    key: str
    subject: str
    original_message_id: str | None = None
    recipients: list[RecipientFailure] = field(default_factory=list)
    auto_reply_from: str | None = None
    absent_until: str | None = None
    diagnostic: str = ""
    detector: str = ""
    to_addresses: list[str] = field(default_factory=list)

    @property
    def is_report(self) -> bool:
        """A delivery report (permanent or transient), not an auto-reply."""
        return self.kind in (PERMANENT, TRANSIENT)


def report_key(message: Message, raw: bytes) -> str:
    """A stable key of a message in the mailbox: its Message-ID, else a hash of its bytes."""
    message_id = (message.get("Message-ID") or "").strip()
    if message_id:
        return message_id[:300]
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def status_kind(status: str | None, action: str | None = None, text: str = "") -> str:
    """PERMANENT or TRANSIENT from an RFC 3463 status, the DSN action, and the text.

    X.2.2 (mailbox full) and 'delayed' are transient whatever the class says: the address
    exists, the town hall only has to empty its mailbox.
    """
    if (action or "").strip().lower() == "delayed":
        return TRANSIENT
    match = _STATUS.search(status or "")
    if match:
        klass, subject, detail = match.groups()
        if (subject, detail) == ("2", "2"):
            return TRANSIENT
        return TRANSIENT if klass == "4" else PERMANENT
    reply = _SMTP_REPLY.search(text)
    if reply:
        return TRANSIENT if reply.group(1).startswith("4") else PERMANENT
    if _TRANSIENT_TEXT.search(text):
        return TRANSIENT
    return PERMANENT


def find_status(text: str) -> str | None:
    """The first RFC 3463 enhanced status code in TEXT."""
    match = _STATUS.search(text)
    return ".".join(match.groups()) if match else None


def verp_address(sender: str, outbox_id: int) -> str:
    """A VERP-style envelope sender for one outbox row: local+bID@domain."""
    local, _, domain = sender.partition("@")
    return f"{local}+b{outbox_id}@{domain}"


def parse_verp(address: str) -> int | None:
    """The outbox id in a VERP envelope sender, or None."""
    match = _VERP.match(address.strip().strip("<>"))
    return int(match["outbox"]) if match else None


def verp_outbox_id(report: Report) -> int | None:
    """The outbox id from the addresses the report was sent to (Delivered-To, To, ...)."""
    for address in report.to_addresses:
        outbox_id = parse_verp(address)
        if outbox_id is not None:
            return outbox_id
    return None


def parse(raw: bytes) -> Report:
    """Read one message of the bounce mailbox."""
    # compat32 parsing: the default policy's header objects cost half the run time here.
    message = message_from_bytes(raw)
    key = report_key(message, raw)
    subject = text_header(message, "Subject")
    to_addresses = [a for _, a in getaddresses(_headers(message, "To", "Delivered-To", "X-Original-To", "Envelope-To", "Return-Path"))]  # fmt: skip
    base: dict[str, Any] = {"key": key, "subject": subject, "to_addresses": to_addresses}
    report = _rfc3464(message, base) or _non_standard(message, raw, base)
    if report is not None:
        return report
    if is_auto_reply(message):
        text = body_text(message)
        sender = getaddresses([str(message.get("From") or "")])
        return Report(
            kind=AUTO_REPLY,
            auto_reply_from=(sender[0][1].lower() if sender and sender[0][1] else None),
            absent_until=absent_until(f"{subject}\n{text}"),
            original_message_id=_in_reply_to(message),
            diagnostic=_first_lines(text),
            detector="auto-reply",
            **base,
        )
    return Report(kind=UNRECOGNISED, **base)


def text_header(message: Message, name: str) -> str:
    """A header as text: RFC 2047 words decoded, raw 8-bit bytes read as UTF-8."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        parts = decode_header(value)
    except (UnicodeError, LookupError, ValueError, TypeError):
        return str(value)
    text = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            encoding = charset if charset and charset != "unknown-8bit" else "utf-8"
            try:
                text.append(chunk.decode(encoding, errors="replace"))
            except LookupError:
                text.append(chunk.decode("utf-8", errors="replace"))
        else:
            text.append(chunk)
    return "".join(text)


def _headers(message: Message, *names: str) -> list[str]:
    return [str(v) for name in names for v in message.get_all(name) or []]


def is_auto_reply(message: Message) -> bool:
    """An automatic reply: RFC 3834 Auto-Submitted, vendor headers, or a typical subject."""
    auto = str(message.get("Auto-Submitted") or "").strip().lower()
    if auto.startswith("auto-replied"):
        return True
    if str(message.get("Precedence") or "").strip().lower() == "auto_reply":
        return True
    if any(message.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponder")):
        return True
    return bool(_AUTO_SUBJECT.search(text_header(message, "Subject")))


def absent_until(text: str) -> str | None:
    """The date an out-of-office notice names ('bis 15.12.2026'), as written."""
    match = _UNTIL.search(text)
    return re.sub(r"\s+", " ", match.group(1)).strip() if match else None


def _in_reply_to(message: Message) -> str | None:
    for name in ("In-Reply-To", "References"):
        value = str(message.get(name) or "")
        ids = re.findall(r"<[^>\s]+>", value)
        if ids:
            return ids[-1] if name == "References" else ids[0]
    return None


def body_text(message: Message) -> str:
    """The plain text of every text/* part that is not an attachment."""
    parts: list[str] = []
    for part in message.walk():
        if part.get_content_maintype() != "text" or part.get_content_subtype() == "rfc822-headers":
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # broken transfer encoding: skip the part, not the report
            continue
        if not isinstance(payload, bytes):
            continue
        text = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
        if part.get_content_subtype() == "html":
            text = re.sub(r"<[^>]+>", " ", text)
        parts.append(text)
    return "\n".join(parts)


def _first_lines(text: str, limit: int = 500) -> str:
    return re.sub(r"\s+", " ", text).strip()[:limit]


def _original_message_id(message: Message) -> str | None:
    """The Message-ID of the mail the report is about (attached message, headers or text)."""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message) and inner.get("Message-ID"):
                return str(inner["Message-ID"]).strip()
        if content_type == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                match = _MESSAGE_ID.search(payload.decode("utf-8", errors="replace"))
                if match:
                    return match.group(1)
    match = _MESSAGE_ID.search(body_text(message))
    own = str(message.get("Message-ID") or "").strip()
    if match and match.group(1) != own:
        return match.group(1)
    return None


def _address(value: str) -> str:
    """The address of an RFC 3464 recipient field ('rfc822; a@b' or '<a@b>')."""
    _, _, rest = value.partition(";") if ";" in value else ("", "", value)
    match = _ADDRESS.search(rest)
    return match.group(1).lower() if match else rest.strip().strip("<>").lower()


def _status_groups(message: Message) -> list[Message] | None:
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                return [p for p in payload if isinstance(p, Message)]
            if isinstance(payload, str):  # some relays send it unparsed
                return [message_from_bytes(b.encode()) for b in re.split(r"\n\s*\n", payload)]
    return None


def _rfc3464(message: Message, base: dict[str, Any]) -> Report | None:
    """An RFC 3464 multipart/report; report-type=delivery-status."""
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type") or "").lower() != "delivery-status":
        return None
    groups = _status_groups(message)
    if not groups:
        return None
    text = body_text(message)
    recipients = []
    for group in groups[1:] or groups:
        final = group.get("Final-Recipient") or group.get("Original-Recipient")
        if not final:
            continue
        action = str(group.get("Action") or "").strip().lower()
        if action in ("delivered", "relayed", "expanded"):
            continue
        status = str(group.get("Status") or "").strip() or None
        diagnostic = re.sub(r"\s+", " ", str(group.get("Diagnostic-Code") or "")).strip()
        diagnostic = diagnostic.partition(";")[2].strip() if ";" in diagnostic else diagnostic
        recipients.append(
            RecipientFailure(
                address=_address(str(final)),
                kind=status_kind(status, action, diagnostic or text),
                status=find_status(status or "") or find_status(diagnostic),
                diagnostic=(diagnostic or _first_lines(text, 300))[:500],
            )
        )
    if not recipients:
        return None
    return Report(
        kind=_overall(recipients),
        original_message_id=_original_message_id(message),
        recipients=recipients,
        diagnostic="; ".join(r.diagnostic for r in recipients)[:1000],
        detector="rfc3464",
        **base,
    )


def _overall(recipients: list[RecipientFailure]) -> str:
    return PERMANENT if any(r.kind == PERMANENT for r in recipients) else TRANSIENT


def _non_standard(message: Message, raw: bytes, base: dict[str, Any]) -> Report | None:
    """Non-standard reports, found by flufl.bounce's detectors (Exchange, qmail, providers...)."""
    from flufl.bounce import all_failures

    looks_like_bounce = bool(_BOUNCE_SUBJECT.search(text_header(message, "Subject"))) or (
        _from_daemon(message)
    )
    if not looks_like_bounce:
        return None
    try:
        # The detectors expect header values as str: the default policy gives them that.
        temporary, permanent = all_failures(message_from_bytes(raw, policy=policy.default))
    except Exception:  # a detector choking on odd MIME must not stop the run
        temporary = permanent = frozenset[bytes]()
    addresses = {_decode(a): PERMANENT for a in permanent}
    addresses.update({_decode(a): TRANSIENT for a in temporary if _decode(a) not in addresses})
    addresses = {a: k for a, k in addresses.items() if "@" in a}
    if not addresses:
        return None
    text = body_text(message)
    status = find_status(text)
    diagnostic = _diagnostic_line(text, status) or _first_lines(text, 300)
    recipients = [
        RecipientFailure(
            address=address,
            kind=status_kind(status, None, diagnostic) if status else kind_from_text(kind, text),
            status=status,
            diagnostic=diagnostic[:500],
        )
        for address, kind in sorted(addresses.items())
    ]
    return Report(
        kind=_overall(recipients),
        original_message_id=_original_message_id(message),
        recipients=recipients,
        diagnostic=diagnostic[:1000],
        detector="flufl.bounce",
        **base,
    )


def kind_from_text(detected: str, text: str) -> str:
    """The detector's verdict, corrected by a mailbox-full or delay phrase in the text."""
    if detected == PERMANENT and _TRANSIENT_TEXT.search(text) and not _PERMANENT_TEXT.search(text):
        return TRANSIENT
    return detected


def _from_daemon(message: Message) -> bool:
    sender = str(message.get("From") or "").lower()
    return "mailer-daemon" in sender or "postmaster" in sender


def _decode(address: bytes | str) -> str:
    value = address.decode("utf-8", errors="replace") if isinstance(address, bytes) else address
    return value.strip().strip("<>").lower()


def _diagnostic_line(text: str, status: str | None) -> str:
    """The line of TEXT that carries the status code or the SMTP reply."""
    for line in text.splitlines():
        stripped = line.strip()
        if status and status in stripped:
            return stripped
    for line in text.splitlines():
        if _SMTP_REPLY.search(line.strip()):
            return line.strip()
    return ""
