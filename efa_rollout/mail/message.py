"""Build RFC 5322 messages: safe headers, IDN domains in punycode, a stable Message-ID."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import idna

from efa_rollout.errors import UserError
from efa_rollout.mail.render import RenderedMail, one_line
from efa_rollout.settings import Settings, get_settings

#: How the stored raw message is serialised: CRLF line ends, 78-column folding.
MAIL_POLICY = policy.SMTP
_FORBIDDEN_IN_ADDRESS = re.compile(r"[\s\x00-\x1f\x7f<>()\[\],;:\"\\\u0085\u2028\u2029]")
_ID_PART = re.compile(r"[^A-Za-z0-9_-]+")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)


class InvalidAddressError(UserError):
    """An e-mail address that cannot be used in a header or an SMTP envelope."""


@dataclass(frozen=True)
class Recipient:
    """An address (already normalised) and an optional display name."""

    address: str
    name: str | None = None


@dataclass(frozen=True)
class Attachment:
    """A file sent along: name, bytes, MIME type such as 'application/pdf'."""

    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"

    @classmethod
    def of(cls, value: Attachment | tuple[str, bytes, str]) -> Attachment:
        """An Attachment from itself or a (filename, content, mime type) tuple."""
        return value if isinstance(value, Attachment) else cls(*value)


def clean_filename(name: str) -> str:
    """A file name safe for a Content-Disposition header: one line, no folders."""
    return one_line(name).replace("/", "_").replace("\\", "_").strip(". ") or "anhang"


def clean_header(value: str) -> str:
    """A header value from data: no CR/LF or other control characters survive."""
    return one_line(value)


def punycode_domain(domain: str) -> str:
    """DOMAIN in ASCII (IDNA 2008 with UTS 46 mapping), lower case; raises if invalid."""
    try:
        ascii_domain = idna.encode(domain.strip().rstrip("."), uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as error:
        raise InvalidAddressError(f"Ungültige Domain »{clean_header(domain)}«: {error}") from None
    if not _DOMAIN.match(ascii_domain):
        raise InvalidAddressError(f"Ungültige Domain »{clean_header(domain)}«.")
    return ascii_domain


def normalize_address(address: str) -> str:
    """ADDRESS checked and with its domain in punycode: 'info@xn--bbingen-n2a.de'."""
    value = address.strip()
    if not value or _FORBIDDEN_IN_ADDRESS.search(value) or value.count("@") != 1:
        raise InvalidAddressError(f"Ungültige E-Mail-Adresse »{clean_header(address)}«.")
    local, domain = value.split("@")
    if (
        not local
        or len(local) > 64
        or not local.isascii()
        or local.startswith(".")
        or ".." in local
    ):
        raise InvalidAddressError(
            f"Ungültige E-Mail-Adresse »{clean_header(address)}«: der Teil vor dem @ muss "
            "aus ASCII-Zeichen bestehen."
        )
    return f"{local}@{punycode_domain(domain)}"


NON_ASCII_LOCAL_PART = (
    "Umlaute und andere Sonderzeichen vor dem @ kann der Mailversand nicht zustellen "
    "(SMTPUTF8 wird nicht verwendet); bitte geben Sie die Adresse in ASCII an, "
    "z. B. mueller@… statt müller@…"
)


def contact_address(text: str) -> str:
    """TEXT as a contact address that can be mailed: valid syntax, ASCII before the @.

    Import, portal and questionnaire all check with this, the same rule the sending side
    applies, so no address is accepted that would later be left out of the recipients.
    Raises InvalidAddressError with the German reason.
    """
    from email_validator import EmailNotValidError, validate_email

    value = text.strip()
    if not value:
        raise InvalidAddressError("E-Mail-Adresse fehlt.")
    local = value.rsplit("@", 1)[0]
    if not local.isascii():
        raise InvalidAddressError(f"»{clean_header(value)}«: {NON_ASCII_LOCAL_PART}.")
    try:
        normalized = validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        raise InvalidAddressError(
            f"»{clean_header(value)}« ist keine gültige E-Mail-Adresse."
        ) from None
    normalize_address(normalized)  # the sending side's rule, so both always agree
    return normalized


def _address(recipient: Recipient) -> Address:
    local, domain = normalize_address(recipient.address).split("@")
    name = clean_header(recipient.name or "")
    return Address(display_name=name, username=local, domain=domain)


def make_message_id(
    *, campaign_id: str | None, ags: str | None, kind: str, sequence: int | str, domain: str
) -> str:
    """'<campaign.ags.kind.sequence@domain>': the same for every retry of one logical mail."""
    parts = [campaign_id or "keine-kampagne", ags or "koordination", kind, str(sequence)]
    local = ".".join(_ID_PART.sub("-", part).strip("-") or "x" for part in parts)
    return f"<{local}@{punycode_domain(domain)}>"


def mail_date(moment: datetime, settings: Settings) -> str:
    """RFC 5322 date in the configured zone: '+0100' in winter, '+0200' in summer."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given; use an aware datetime")
    return format_datetime(moment.astimezone(settings.zone))


def build_message(
    rendered: RenderedMail,
    *,
    to: Sequence[Recipient],
    cc: Sequence[Recipient] = (),
    message_id: str,
    date: datetime,
    kind: str,
    campaign_id: str | None = None,
    ags: str | None = None,
    attachments: Sequence[Attachment] = (),
    settings: Settings | None = None,
) -> EmailMessage:
    """multipart/alternative (text, then HTML), mixed with ATTACHMENTS; all headers safe."""
    settings = settings or get_settings()
    if not to:
        raise InvalidAddressError("Eine Nachricht braucht mindestens einen Empfänger.")
    if not re.fullmatch(r"<[A-Za-z0-9._-]+@[a-z0-9.-]+>", message_id):
        raise ValueError(f"malformed Message-ID: {message_id!r}")
    if ags is not None and not re.fullmatch(r"\d{8}", ags):
        raise ValueError(f"AGS must be 8 digits: {ags!r}")
    message = EmailMessage(policy=MAIL_POLICY)
    sender_name = f"{settings.coordinator_name}, {settings.coordinator_office}"
    message["From"] = _address(Recipient(settings.mail_from, sender_name))
    message["To"] = tuple(_address(r) for r in to)
    if cc:
        message["Cc"] = tuple(_address(r) for r in cc)
    message["Reply-To"] = _address(
        Recipient(settings.effective_reply_to, settings.coordinator_name)
    )
    message["Subject"] = clean_header(rendered.subject)
    message["Date"] = mail_date(date, settings)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    if campaign_id:
        message["X-EfA-Campaign"] = _ID_PART.sub("-", campaign_id)
    if ags:
        message["X-EfA-Municipality"] = ags
    message["X-EfA-Kind"] = _ID_PART.sub("-", kind)
    message.set_content(rendered.text, charset="utf-8", cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    for attachment in attachments:
        maintype, _, subtype = attachment.mime_type.partition("/")
        message.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=clean_filename(attachment.filename),
        )
    message["Content-Language"] = "de"  # after set_content, which clears Content-* headers
    return message


def message_bytes(message: EmailMessage) -> bytes:
    """The message as it is stored and sent (CRLF line ends)."""
    return message.as_bytes(policy=MAIL_POLICY)


def envelope_recipients(to: Sequence[Recipient], cc: Sequence[Recipient] = ()) -> list[str]:
    """Normalised, de-duplicated envelope addresses, in order."""
    seen: dict[str, str] = {}
    for recipient in [*to, *cc]:
        address = normalize_address(recipient.address)
        seen.setdefault(address.lower(), address)
    return list(seen.values())
