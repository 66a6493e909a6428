"""Message building: the headers RFC 5322 and our conventions ask for, and nothing injected."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy

import pytest

from efa_rollout.mail.message import (
    InvalidAddressError,
    Recipient,
    build_message,
    make_message_id,
    message_bytes,
    normalize_address,
)
from efa_rollout.mail.render import RenderedMail
from efa_rollout.settings import get_settings

MAIL = RenderedMail(
    "ViBa BW – Rückmeldung bis 15.03.2025 (Gemeinde Böbingen an der Rems)",
    "Grüße\n",
    "<p>Grüße</p>",
)


def _build(
    when: datetime = datetime(2025, 1, 15, 9, tzinfo=UTC),
    rendered: RenderedMail = MAIL,
    **overrides: object,
) -> email.message.EmailMessage:
    arguments: dict[str, object] = {
        "to": [Recipient("hauptamt@boebingen.example", "Jürgen Schäfer")],
        "message_id": make_message_id(
            campaign_id="viba-ostalbkreis",
            ags="08136010",
            kind="reminder",
            sequence=2,
            domain="lra-ostalbkreis.example",
        ),
        "date": when,
        "kind": "reminder",
        "campaign_id": "viba-ostalbkreis",
        "ags": "08136010",
    }
    arguments.update(overrides)
    return build_message(rendered, **arguments)  # type: ignore[arg-type]


def _parsed(message: email.message.EmailMessage) -> email.message.EmailMessage:
    raw = message_bytes(message)
    assert b"\r\n" in raw and all(len(line) <= 998 for line in raw.split(b"\r\n"))
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def test_headers(efa_env) -> None:
    parsed = _parsed(_build())
    settings = get_settings()
    assert parsed["Message-ID"] == "<viba-ostalbkreis.08136010.reminder.2@lra-ostalbkreis.example>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["X-EfA-Campaign"] == "viba-ostalbkreis"
    assert parsed["X-EfA-Municipality"] == "08136010"
    assert parsed["X-EfA-Kind"] == "reminder"
    assert parsed["Reply-To"].addresses[0].addr_spec == settings.effective_reply_to
    assert parsed["From"].addresses[0].addr_spec == settings.mail_from
    assert parsed["From"].addresses[0].display_name == "Erika Mustermann, Landratsamt Ostalbkreis"
    assert parsed.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in parsed.iter_parts()]
    assert parts == ["text/plain", "text/html"]


def test_umlauts_are_encoded(efa_env) -> None:
    raw = message_bytes(_build())
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"=?utf-8?" in head
    parsed = _parsed(_build())
    assert parsed["Subject"] == MAIL.subject
    assert parsed["To"].addresses[0].display_name == "Jürgen Schäfer"


@pytest.mark.parametrize(
    ("when", "offset"),
    [
        (datetime(2025, 1, 15, 9, tzinfo=UTC), "+0100"),
        (datetime(2025, 7, 15, 9, tzinfo=UTC), "+0200"),
    ],
)
def test_date_carries_the_berlin_offset(efa_env, when: datetime, offset: str) -> None:
    parsed = _parsed(_build(when))
    assert parsed["Date"].endswith(offset)
    assert parsed["Date"].datetime == when


def test_message_id_is_sanitised_and_stable() -> None:
    one = make_message_id(
        campaign_id="viba ost/albkreis",
        ags="08136010",
        kind="reminder",
        sequence=1,
        domain="Landratsamt-Ostälb.DE",
    )
    assert one == "<viba-ost-albkreis.08136010.reminder.1@xn--landratsamt-ostlb-4qb.de>"
    assert one == make_message_id(
        campaign_id="viba ost/albkreis",
        ags="08136010",
        kind="reminder",
        sequence=1,
        domain="Landratsamt-Ostälb.DE",
    )


def test_idn_domains_go_out_in_punycode(efa_env) -> None:
    assert normalize_address("info@gemeinde-böbingen.de") == "info@xn--gemeinde-bbingen-vwb.de"
    assert normalize_address("post@straße.de") == "post@xn--strae-oqa.de"  # IDNA 2008: ß stays ß
    parsed = _parsed(_build(to=[Recipient("info@gemeinde-böbingen.de")]))
    assert parsed["To"].addresses[0].domain == "xn--gemeinde-bbingen-vwb.de"


@pytest.mark.parametrize(
    "bad",
    [
        "ohne-at",
        "a@b@c.de",
        "a b@c.de",
        "a@c.de\r\nBcc: evil@x",
        "müller@c.de",
        "a@-c.de",
        "<a@c.de>",
        "a@c",
    ],
)
def test_invalid_addresses_raise(bad: str) -> None:
    with pytest.raises(InvalidAddressError):
        normalize_address(bad)


def test_no_header_injection_from_data(efa_env) -> None:
    evil = RenderedMail("Rückmeldung (Gemeinde Essingen\r\nBcc: evil@x)", "x\n", "<p>x</p>")
    message = _build(rendered=evil, to=[Recipient("a@essingen.example", "Essingen\r\nBcc: evil@x")])
    raw = message_bytes(message)
    assert b"\r\nBcc:" not in raw and b"\nBcc:" not in raw
    parsed = _parsed(message)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Rückmeldung (Gemeinde Essingen Bcc: evil@x)"
    assert [a.addr_spec for a in parsed["To"].addresses] == ["a@essingen.example"]
    with pytest.raises(InvalidAddressError):
        _build(to=[Recipient("a@essingen.example\r\nBcc: evil@x")])
    with pytest.raises(ValueError):
        _build(ags="0813601\n")


def test_ascii_domains_skip_idna_with_the_same_result() -> None:
    import random

    import idna

    from efa_rollout.mail import message

    def through_idna(domain: str) -> str:
        try:
            ascii_domain = idna.encode(domain.strip().rstrip("."), uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return "invalid"
        return ascii_domain if message._DOMAIN.match(ascii_domain) else "invalid"

    def ours(domain: str) -> str:
        try:
            return message.punycode_domain.__wrapped__(domain)
        except InvalidAddressError:
            return "invalid"

    rng = random.Random(14)
    samples = ["Gemeinde-Aalen.DE", "a" * 63 + ".de", "a" * 64 + ".de", "ab--c.de", "1.2"]
    samples += ["xn--bbingen-n2a.de", "XN--bbingen-n2a.de", "xn--zz.de", "a.b.", " x.de "]
    for _ in range(20_000):
        word = "".join(rng.choice("abXZ09-._ ") for _ in range(rng.randint(1, 16)))
        samples.append(rng.choice(["", "xn--"]) + word + rng.choice(["", ".de"]))
    assert [ours(d) for d in samples] == [through_idna(d) for d in samples]
