"""A throw-away Dovecot IMAP server on loopback (Debian's dovecot-imapd), for tests and bench.

Runs `dovecot -F -c CONFIG` with its own directories. As root, Dovecot refuses to run its login
processes or touch mail as UID 0: the package's dovenull/dovecot users run the services and
`nobody` owns the mailbox (see /work/shared/TESTING.md). TLS: a self-signed certificate made
with `cryptography`, so imaps:// and STARTTLS can be tested too (with ?verify=0).
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "geheim-123"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dovecot_available() -> bool:
    """Whether Dovecot is installed here."""
    return Path(DOVECOT).exists()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Dovecot:
    """A running Dovecot: ports, the user, and helpers to fill and inspect the mailbox."""

    root: Path
    port: int
    tls_port: int
    process: subprocess.Popen[bytes]

    def url(self, folder: str = "INBOX", *, scheme: str = "imap", query: str = "starttls=0") -> str:
        """The EFA_BOUNCE_IMAP_URL for this server."""
        port = self.tls_port if scheme == "imaps" else self.port
        return f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{port}/{folder}?{query}"

    def client(self) -> imaplib.IMAP4:
        """A logged-in imaplib client (for setting up and checking cases)."""
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        imap.login(USER, PASSWORD)
        return imap

    def append(self, messages: list[bytes], folder: str = "INBOX") -> None:
        """APPEND MESSAGES to FOLDER."""
        imap = self.client()
        try:
            for raw in messages:
                status, _ = imap.append(folder, "", imaplib.Time2Internaldate(time.time()), raw)
                assert status == "OK"
        finally:
            imap.logout()

    def messages(self, folder: str = "INBOX") -> list[tuple[int, frozenset[bytes], bytes]]:
        """(UID, flags without \\Recent, raw) of every message in FOLDER; marks nothing seen."""
        from imapclient import IMAPClient

        with IMAPClient("127.0.0.1", port=self.port, ssl=False) as imap:
            imap.login(USER, PASSWORD)
            if not imap.folder_exists(folder):
                return []
            imap.select_folder(folder, readonly=True)
            data = imap.fetch(imap.search("ALL"), ["FLAGS", "BODY.PEEK[]"])
            return [
                (uid, frozenset(f for f in item[b"FLAGS"] if f != b"\\Recent"), item[b"BODY[]"])
                for uid, item in sorted(data.items())
            ]

    def clear(self) -> None:
        """Empty INBOX and remove every other folder (between tests sharing one server)."""
        from imapclient import IMAPClient

        with IMAPClient("127.0.0.1", port=self.port, ssl=False) as imap:
            imap.login(USER, PASSWORD)
            for _flags, _sep, name in imap.list_folders():
                if name.upper() != "INBOX":
                    imap.delete_folder(name)
            imap.select_folder("INBOX")
            uids = imap.search("ALL")
            if uids:
                imap.delete_messages(uids)
                imap.expunge()

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _config(root: Path, port: int, tls_port: int, cert: Path, key: Path) -> str:
    as_root = os.geteuid() == 0
    uid, gid = (
        (pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
        if as_root
        else (
            os.getuid(),
            os.getgid(),
        )
    )
    users = (
        "default_login_user = dovenull\ndefault_internal_user = dovecot\n"
        if as_root
        else f"default_login_user = {pwd.getpwuid(uid).pw_name}\n"
        f"default_internal_user = {pwd.getpwuid(uid).pw_name}\n"
    )
    return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
{users}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def start_dovecot() -> Dovecot:
    """Start a fresh Dovecot on two free loopback ports; waits until it greets."""
    root = Path(tempfile.mkdtemp(prefix="efa-dovecot-"))
    root.chmod(0o755)
    cert, key = _self_signed(root)
    key.chmod(0o644)  # read by the login process; a throw-away key
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    home = root / "home" / USER
    home.mkdir(parents=True)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for path in (root / "home", home):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    port, tls_port = free_port(), free_port()
    config = root / "dovecot.conf"
    config.write_text(_config(root, port, tls_port, cert, key))
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    server = Dovecot(root, port, tls_port, process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"dovecot exited: {error}\n{log}")
        try:
            server.client().logout()
            return server
        except OSError:
            time.sleep(0.1)
        except Exception:  # it answers but refuses us (e.g. auth): stop it, leave nothing behind
            server.stop()
            raise
    server.stop()
    raise RuntimeError("dovecot did not answer within 20 s")
