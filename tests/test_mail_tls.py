"""TLS and AUTH from the SMTP URL: STARTTLS on submission, implicit TLS (smtps)."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlmodel import Session

from efa_rollout.mail.delivery import deliver
from efa_rollout.services.mail_preview import queue_test_mail
from efa_rollout.settings import get_settings
from tests.mail_support import NOW
from tests.smtp_fault_server import FaultHandler, free_port

USER, PASSWORD = "lra@ostalb", "geh:eim"


def _self_signed(folder: Path) -> ssl.SSLContext:
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


class _Logins:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.seen.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=(data.login.decode(), data.password.decode()) == (USER, PASSWORD))


@pytest.fixture(params=["starttls", "smtps"])
def tls_server(
    request: pytest.FixtureRequest, efa_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FaultHandler, _Logins]]:
    context = _self_signed(tmp_path)
    handler, logins, port = FaultHandler(), _Logins(), free_port()
    if request.param == "starttls":
        controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=port,
            tls_context=context,
            require_starttls=True,
            authenticator=logins,
            auth_required=True,
        )
        url = f"smtp://lra%40ostalb:geh%3Aeim@127.0.0.1:{port}?starttls=1&verify=0"
    else:
        controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=port,
            ssl_context=context,
            authenticator=logins,
            auth_required=True,
            auth_require_tls=False,  # aiosmtpd does not count implicit TLS for this check
        )
        url = f"smtps://lra%40ostalb:geh%3Aeim@127.0.0.1:{port}?verify=0"
    controller.start()
    monkeypatch.setenv("EFA_SMTP_URL", url)
    get_settings.cache_clear()
    yield handler, logins
    controller.stop()
    get_settings.cache_clear()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_tls_and_auth(session: Session, tls_server: tuple[FaultHandler, _Logins]) -> None:
    handler, logins = tls_server
    rows = [
        queue_test_mail(session, address=f"ok{i}@x.example", kind="go_live", now=NOW)
        for i in range(3)
    ]
    session.commit()
    report = deliver(now=NOW)
    assert report.total("sent") == 3
    assert sorted(s.message_id for s in handler.stored) == sorted(r.message_id for r in rows)
    assert set(logins.seen) == {(USER, PASSWORD)}


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_wrong_password_keeps_the_mail_queued(
    session: Session, tls_server: tuple[FaultHandler, _Logins], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, _ = tls_server
    monkeypatch.setenv(
        "EFA_SMTP_URL", get_settings().smtp_url.get_secret_value().replace("geh%3Aeim", "falsch")
    )
    monkeypatch.setenv("EFA_SMTP_TIMEOUT_SECONDS", "1")
    get_settings.cache_clear()
    row = queue_test_mail(session, address="ok@x.example", kind="go_live", now=NOW)
    session.commit()
    report = deliver(now=NOW)
    session.refresh(row)
    assert report.total("retrying") == 1 and row.status == "retrying"
    assert "(connect)" in row.last_error and not handler.stored
