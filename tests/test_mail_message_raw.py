"""`build_raw` writes the same message as the email package, only faster: compared part by part."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

import pytest

from efa_rollout.mail.message import (
    Attachment,
    InvalidAddressError,
    Recipient,
    build_message,
    build_raw,
    message_bytes,
    quoted_printable,
)
from efa_rollout.mail.render import RenderedMail

WHEN = datetime(2025, 7, 15, 9, 30, tzinfo=UTC)
LONG = "Sehr lange Zeile " * 12
SUBJECTS = [
    "Rückmeldung",
    "ViBa BW – Rückmeldung bis 15.03.2025 (Gemeinde Böbingen an der Rems)",
    "eWA – Erinnerung: offene Punkte der Checkliste und des Fragebogens bis Freitag, 12.07.2024 "
    "(Stadt Schwäbisch Gmünd, Landkreis Ostalbkreis, Regierungsbezirk Stuttgart)",
    "ASCII only but quite long: " + "word " * 30,
    "Text mit =?utf-8?q?falsch?= kodiertem Wort",
    "Ünïcödé " * 20,
    "Emoji 🎉 und 中文 im Betreff",
    "x" * 120,
]
NAMES = [
    None,
    "Jürgen Schäfer",
    "Dr. Anna von Berg",
    "Müller, Anna",
    'Quote " and \\ backslash',
    "Bürgermeisterin Dr. Annegret Kramp-Karrenbauer-Schmidt-Müller-Lüdenscheidt",
    "Plain Name",
    "=?utf-8?q?tricky?=",
]
TEXTS = [
    "Grüße\n",
    "Zeile mit = Gleichheitszeichen und Leerzeichen am Ende   \nund\tTab\t\n\n\nEnde",
    LONG + "ä" * 40 + "\n" + "." + LONG + "\n",
    "https://portal.landratsamt-ostalbkreis.example/efa/rueckmeldung/zugang/p/"
    "efa-link-placeholder-not-a-token\n",
    "Carriage\r\nreturn\rmixed\n",
    "",
]


def _both(rendered: RenderedMail, **kwargs: object) -> tuple[EmailMessage, EmailMessage, bytes]:
    arguments = {
        "to": [Recipient("hauptamt@essingen.example", "Jürgen Schäfer")],
        "message_id": "<viba.08136019.reminder.2@ostalbkreis.example>",
        "date": WHEN,
        "kind": "reminder",
        "campaign_id": "viba-ostalbkreis",
        "ags": "08136019",
        **kwargs,
    }
    reference = message_bytes(build_message(rendered, **arguments))  # type: ignore[arg-type]
    raw = build_raw(rendered, **arguments)  # type: ignore[arg-type]
    parse = email.message_from_bytes
    return parse(reference, policy=policy.default), parse(raw, policy=policy.default), raw  # type: ignore[return-value]


def _same(
    reference: EmailMessage, fast: EmailMessage, raw: bytes, literal: dict[str, str] | None = None
) -> None:
    """FAST parses like REFERENCE; headers in LITERAL must read exactly so (the email package
    turns text that looks like an encoded-word into what it encodes; build_raw keeps it)."""
    literal = literal or {}
    assert raw.isascii() and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 78 for line in raw.split(b"\r\n")), "a line over 78 columns"
    names = [n for n in reference if n != "Content-Type"]
    assert [n for n in fast if n != "Content-Type"] == names
    for name in names:
        assert str(fast[name]) == literal.get(name, str(reference[name])), name
    for name in ("To", "Cc", "From", "Reply-To"):
        if reference[name] is not None and name not in literal:
            assert [(a.display_name, a.addr_spec) for a in fast[name].addresses] == [
                (a.display_name, a.addr_spec) for a in reference[name].addresses
            ]
    reference_parts, fast_parts = list(reference.walk()), list(fast.walk())
    assert [p.get_content_type() for p in fast_parts] == [
        p.get_content_type() for p in reference_parts
    ]
    for mine, theirs in zip(fast_parts, reference_parts, strict=True):
        if mine.is_multipart():
            continue
        assert mine.get_payload(decode=True) == theirs.get_payload(decode=True)
        assert mine.get_content_charset() == theirs.get_content_charset()
        assert mine.get_filename() == theirs.get_filename()
    assert not fast.defects and all(not p.defects for p in fast_parts)


@pytest.mark.parametrize("subject", SUBJECTS)
def test_subjects(efa_env, subject: str) -> None:
    literal = {"Subject": subject.strip()} if "=?" in subject else {}
    _same(*_both(RenderedMail(subject, "x\n", "<p>x</p>")), literal)


@pytest.mark.parametrize("name", NAMES)
def test_display_names(efa_env, name: str | None) -> None:
    to = [Recipient("hauptamt@essingen.example", name), Recipient("b@böbingen.example", name)]
    cc = [Recipient("egov@ostalbkreis.example", name)]
    reference, fast, raw = _both(RenderedMail("Betreff", "x\n", "<p>x</p>"), to=to, cc=cc)
    literal = {}
    if name and ("=?" in name or len(name) > 50):
        # The email package's parser puts a space between two encoded-words of one display
        # name (RFC 2047 says to drop it), differently for both builders: compare the name.
        literal = {h: str(fast[h]) for h in ("To", "Cc")}
        for address in (*fast["To"].addresses, *fast["Cc"].addresses):
            assert address.display_name.replace(" ", "") == name.replace(" ", "")
    _same(reference, fast, raw, literal)


def test_many_recipients_fold(efa_env) -> None:
    to = [Recipient(f"person{i}@gemeinde-{i}.example", f"Person Nummer {i}") for i in range(12)]
    _same(*_both(RenderedMail("Betreff", "x\n", "<p>x</p>"), to=to))


@pytest.mark.parametrize("text", TEXTS)
def test_bodies(efa_env, text: str) -> None:
    html = "<p>" + text.replace("\n", "<br>\n") + "</p>"
    _same(*_both(RenderedMail("Betreff", text, html)))


@pytest.mark.parametrize(
    "filename",
    [
        "Zusammenfassung.pdf",
        "Zusammenfassung ViBa BW – Fassung 2.pdf",
        "Ein sehr langer Dateiname für die Zusammenfassung der Kampagne ViBa BW im Ostalbkreis.pdf",
        'quote".pdf',
    ],
)
def test_attachments(efa_env, filename: str) -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    files = [
        Attachment(filename, pdf, "application/pdf"),
        Attachment("daten.csv", b"a;b\n", "text"),
    ]
    _same(*_both(RenderedMail("Betreff", "Anhang\n", "<p>Anhang</p>"), attachments=files))


def test_quoted_printable_round_trip() -> None:
    import quopri

    text = "".join(chr(c) for c in range(32, 0x250)) + " \n\t=\n" + "ü" * 100 + "\n"
    encoded = quoted_printable(text)
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    assert quopri.decodestring(encoded).decode("utf-8") == text.replace("\n", "\r\n")
    assert not re.search(rb"[ \t]\r\n", encoded)  # no trailing whitespace survives


def test_checks_are_the_same_as_build_message(efa_env) -> None:
    rendered = RenderedMail("x", "x\n", "<p>x</p>")
    with pytest.raises(InvalidAddressError):
        build_raw(rendered, to=[], message_id="<a@b.example>", date=WHEN, kind="x")
    with pytest.raises(InvalidAddressError):
        build_raw(
            rendered,
            to=[Recipient("a@essingen.example\r\nBcc: evil@x")],
            message_id="<a@b.example>",
            date=WHEN,
            kind="x",
        )
    with pytest.raises(ValueError):
        build_raw(rendered, to=[Recipient("a@b.example")], message_id="a", date=WHEN, kind="x")
    with pytest.raises(ValueError):
        build_raw(
            rendered,
            to=[Recipient("a@b.example")],
            message_id="<a@b.example>",
            date=WHEN,
            kind="x",
            ags="0813601\n",
        )


def test_long_message_id_and_campaign_fold(efa_env) -> None:
    long_id = "<viba-ostalbkreis-lang.08136019.information_request.1@ostalbkreis.example>"
    assert 66 < len(long_id) < 77
    rendered = RenderedMail("Betreff", "x\n", "<p>x</p>")
    campaign = "viba-ostalbkreis-mit-einem-sehr-langen-namen-der-kaum-in-eine-zeile-passt"
    _same(*_both(rendered, message_id=long_id, campaign_id=campaign))
