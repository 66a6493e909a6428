"""Message building alternatives, per mail: what queueing one information request costs.

Prints µs per mail (CPU) for: rendering the templates; building with the email package
(`EmailMessage` with `policy.SMTP`, as before; with a cheaper policy: `compat32` plus
`email.mime` classes); `build_raw` (the templated skeleton written directly, now used); and at
hand-over, putting the personal link in. Never a timed test.

    .venv/bin/python bench/bench_message.py [--mails 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formataddr
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _per_mail(label: str, n: int, fn: Callable[[int], Any]) -> float:
    fn(0)  # warm caches (templates, IDNA) as a real batch would
    started = time.process_time()
    for i in range(n):
        fn(i)
    micros = (time.process_time() - started) / n * 1e6
    print(f"| {label} | {micros:,.0f} µs |")
    return micros


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("EFA_DATA_DIR", tempfile.mkdtemp(prefix="efa-bench-message-"))
    sys.path.insert(0, str(REPO))

    from efa_rollout.mail.context import build_context
    from efa_rollout.mail.message import (
        Recipient,
        build_message,
        build_raw,
        make_message_id,
        message_bytes,
        normalize_address,
    )
    from efa_rollout.mail.personal_link import PLACEHOLDER, content_to_send, load_link_secret
    from efa_rollout.mail.render import render_mail
    from efa_rollout.services.links import portal_url
    from efa_rollout.services.mail_preview import sample_extra, sample_objects
    from efa_rollout.settings import get_settings

    settings = get_settings()
    now = datetime(2024, 4, 15, 7, tzinfo=UTC)
    campaign, enrolment, municipality = sample_objects(now)
    context = build_context(
        None,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        contacts=[],
        kind="information_request",
        sequence=1,
        now=now,
        settings=settings,
        portal_link=portal_url(settings.portal_base_url, PLACEHOLDER),
        extra=sample_extra("information_request", now),
    )
    rendered = render_mail("information_request", context)
    to = [
        Recipient("hauptamt@gemeinde-böbingen-an-der-rems-08136010.example", "Hauptamt"),
        Recipient("buergerbuero@gemeinde-böbingen-an-der-rems-08136010.example", "Bürgerbüro"),
    ]

    def ids(i: int) -> str:
        return make_message_id(
            campaign_id="ewa-scale",
            ags=f"{8136000 + i:08d}",
            kind="information_request",
            sequence=1,
            domain=settings.effective_message_id_domain,
        )

    common = {"to": to, "date": now, "kind": "information_request", "campaign_id": "ewa-scale"}

    def email_package(i: int) -> bytes:
        message = build_message(rendered, message_id=ids(i), ags=f"{8136000 + i:08d}", **common)
        return message_bytes(message)

    def cheaper_policy(i: int) -> bytes:
        message = MIMEMultipart("alternative", policy=compat32)
        message["From"] = formataddr((settings.coordinator_name, settings.mail_from))
        message["To"] = ", ".join(
            formataddr((r.name or "", normalize_address(r.address))) for r in to
        )
        message["Subject"] = rendered.subject
        message["Message-ID"] = ids(i)
        message.attach(MIMEText(rendered.text, "plain", "utf-8"))
        message.attach(MIMEText(rendered.html, "html", "utf-8"))
        return message.as_bytes(policy=compat32.clone(linesep="\r\n"))

    def fast(i: int) -> bytes:
        return build_raw(rendered, message_id=ids(i), ags=f"{8136000 + i:08d}", **common)

    raw = fast(0)
    secret = load_link_secret(settings.data_dir)
    link = {"nonce": "0" * 32, "hash": ""}
    from efa_rollout.mail.personal_link import derive_token, hash_token

    link["hash"] = hash_token(derive_token(secret, link["nonce"], ids(0)))

    print(f"{args.mails} mails, {len(raw):,} bytes each; load {os.getloadavg()[0]:.1f}")
    print()
    print("| step | CPU per mail |")
    print("|---|---:|")
    _per_mail(
        "render (Jinja: subject, text, HTML)",
        args.mails,
        lambda i: render_mail("information_request", context),
    )
    before = _per_mail("build: email package, policy.SMTP (before)", args.mails, email_package)
    _per_mail(
        "build: email.mime + compat32 (cheaper policy; less header safety)",
        args.mails,
        cheaper_policy,
    )
    after = _per_mail("build: build_raw, templated skeleton (now)", args.mails, fast)
    _per_mail(
        "hand-over: derive the token, put the link in",
        args.mails,
        lambda i: content_to_send(raw, {"link": link}, ids(0), secret),
    )
    print()
    print(f"build_raw is {before / after:.1f}× cheaper than the email package")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
