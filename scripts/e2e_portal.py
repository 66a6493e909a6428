#!/usr/bin/env python3
"""End to end through the portal: from the directory import to the stage change.

In a temporary data folder: import the Ostalbkreis from GV100AD, add demo contacts, create and
start the eWA campaign, deliver the information requests to a local SMTP sink, take the personal
links out of the received mails, fill the portal over HTTP (complete for a few municipalities,
with errors for one), deliver the confirmations, run the tick and check the stages. Takes
screenshots of the portal (empty, with errors, submitted) with headless Chromium into
docs/screenshots/. Run: .venv/bin/python scripts/e2e_portal.py [--keep] [--no-screenshots]
"""

from __future__ import annotations

import argparse
import csv
import email
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import date, timedelta
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHOTS = ROOT / "docs" / "screenshots"
DISTRICT = "08136"
CAMPAIGN = "ewa-ostalbkreis"
GV100AD_CANDIDATES = (
    Path(os.environ.get("EFA_GV100AD", "/nonexistent")),
    ROOT.parent / "shared" / "data" / "GV100AD_301123.txt",
    ROOT / "reference" / "GV100AD_301123.txt",
)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

#: Who fills in what (AGS from GV100AD, Ostalbkreis).
COMPLETE = {"08136088": "Aalen", "08136021": "Essingen", "08136010": "Bopfingen"}
WITH_ERRORS = "08136065"  # Schwäbisch Gmünd: an invalid address and missing fields
DRAFT_ONLY = "08136009"  # Böbingen an der Rems: saves a draft, does not submit
EMPTY = "08136043"  # Mögglingen: the empty page for the screenshot


def say(text: str) -> None:
    print(f"» {text}", flush=True)


def fail(text: str) -> None:
    raise SystemExit(f"FEHLER: {text}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def efa(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(BIN / "efa"), *args], env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        fail(f"efa {' '.join(args)}\n{result.stdout}\n{result.stderr}")
    return result


def next_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


# -- SMTP sink ---------------------------------------------------------------------------------


class Sink:
    """Collects every mail an aiosmtpd server on loopback receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK: angenommen"

    def of_kind(self, kind: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m["X-EfA-Kind"] == kind]


@contextmanager
def smtp_sink() -> Any:
    from aiosmtpd.controller import Controller

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, controller.port
    finally:
        controller.stop()


def body_text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    return ""


# -- data --------------------------------------------------------------------------------------


def import_directory(env: dict[str, str], data_dir: Path) -> None:
    source = next((p for p in GV100AD_CANDIDATES if p.is_file()), None)
    if source is None:
        fail("GV100AD_301123.txt nicht gefunden (EFA_GV100AD setzen).")
    result = efa("municipalities", "import", str(source), "--district", DISTRICT, env=env)
    say(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "Gemeinden importiert")
    rows = json.loads(efa("municipalities", "list", "--json", env=env, check=False).stdout or "[]")
    if rows and isinstance(rows, list):
        municipalities = [
            (r["ags"], r["name"]) for r in rows if r.get("type_code") not in ("65", "66")
        ]
    else:  # no list command: read the database directly
        municipalities = _municipalities_from_db(env)
    path = data_dir / "ansprechpersonen.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(
            ["AGS", "Rolle", "Anrede", "Name", "Funktion", "E-Mail", "Telefon", "Funktionspostfach"]
        )
        for ags, name in municipalities:
            slug = re.sub(
                r"[^a-z]+",
                "-",
                name.lower()
                .replace("ä", "ae")
                .replace("ö", "oe")
                .replace("ü", "ue")
                .replace("ß", "ss"),
            ).strip("-")
            writer.writerow([ags, "Meldebehörde", "", "", "", f"meldeamt@{slug}.example", "", "ja"])
            writer.writerow(
                [
                    ags,
                    "Hauptamt",
                    "Frau",
                    f"Erika {name.split()[0]}",
                    "Hauptamtsleiterin",
                    f"hauptamt@{slug}.example",
                    "07361 000-0",
                    "nein",
                ]
            )
    result = efa("contacts", "import", str(path), env=env)
    say(
        f"Ansprechpersonen: {result.stdout.strip().splitlines()[-1] if result.stdout.strip() else 'importiert'}"
    )


def _municipalities_from_db(env: dict[str, str]) -> list[tuple[str, str]]:
    code = (
        "from sqlmodel import Session, select\n"
        "from efa_rollout.db import get_engine\n"
        "from models import Municipality\n"
        "with Session(get_engine()) as s:\n"
        "    for m in s.exec(select(Municipality).where(Municipality.district_code == '08136')):\n"
        "        if m.type_code not in ('65', '66'): print(m.ags + ';' + m.name)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return [tuple(line.split(";", 1)) for line in out.stdout.splitlines() if line]  # type: ignore[misc]


# -- portal forms ------------------------------------------------------------------------------


def contact(
    prefix: str, salutation: str, name: str, function: str, mail: str, phone: str
) -> dict[str, str]:
    return {
        f"{prefix}.salutation": salutation,
        f"{prefix}.name": name,
        f"{prefix}.function": function,
        f"{prefix}.email": mail,
        f"{prefix}.phone": phone,
    }


def complete_answers(domain: str) -> dict[str, str]:
    data: dict[str, str] = {}
    data.update(
        contact(
            "f.projektleitung",
            "Frau",
            "Petra Projekt",
            "Hauptamtsleiterin",
            f"petra.projekt@{domain}",
            "07361 52-100",
        )
    )
    data.update(
        contact(
            "f.kontakt_technik",
            "Herr",
            "Tobias Technik",
            "IT-Koordinator",
            f"it@{domain}",
            "07361 52-140",
        )
    )
    data.update(
        contact(
            "f.kontakt_fachlich",
            "Frau",
            "Melanie Melde",
            "Leiterin Bürgerbüro",
            f"buergerbuero@{domain}",
            "07361 52-200",
        )
    )
    data.update(
        contact(
            "f.kontakt_datenschutz",
            "Herr",
            "Daniel Schutz",
            "Datenschutzbeauftragter",
            f"datenschutz@{domain}",
            "07361 52-105",
        )
    )
    data.update(
        contact(
            "f.bearbeitung_1704",
            "Frau",
            "Melanie Melde",
            "Leiterin Bürgerbüro",
            f"buergerbuero@{domain}",
            "07361 52-200",
        )
    )
    data.update(
        contact(
            "f.bearbeitung_1704_vertretung",
            "Herr",
            "Valentin Vertreter",
            "Sachbearbeiter Meldewesen",
            f"meldewesen@{domain}",
            "07361 52-201",
        )
    )
    data.update(
        {
            "f.funktionspostfach": f"meldeamt@{domain}",
            "f.meldesoftware": "ok_ewo",
            "f.ewa_modul_bestellt": "ja",
            "f.routing_delegiert": "ja",
            "f.muellveranlagung": "Bei jeder Anmeldung wird das Formular der GOA (Abfallwirtschaft) per Post versandt.",
            "f.offene_punkte": "Bitte Termin für die Schulung im Bürgerbüro bestätigen.",
        }
    )
    return data


def with_errors(domain: str) -> dict[str, str]:
    data = contact(
        "f.projektleitung",
        "Herr",
        "Gerd Gmünder",
        "Amtsleiter",
        f"gerd.gmuender@{domain}",
        "07171 603-0",
    )
    data.update(contact("f.kontakt_technik", "", "Ines IT", "", "ines.it(at)gmuend", "07171 603-1"))
    data.update(
        {
            "f.funktionspostfach": "buergerbuero@",
            "f.meldesoftware": "ok_ewo",
            "f.wunsch_stichtag": "31.02.2025",
            "f.ewa_modul_bestellt": "ja",
        }
    )
    return data


def form_page(client: httpx.Client, token: str) -> tuple[str, str, str]:
    response = client.get(f"/p/{token}")
    if response.status_code != 200:
        fail(f"Portalseite antwortet {response.status_code}")
    html = response.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    basis = re.search(r'name="basis" value="(\d+)"', html)
    if not csrf or not basis:
        fail("Formular ohne CSRF-Feld")
    return html, csrf.group(1), basis.group(1)


def post_answers(
    client: httpx.Client, token: str, data: dict[str, str], action: str
) -> httpx.Response:
    _, csrf, basis = form_page(client, token)
    return client.post(
        f"/p/{token}/fragebogen", data={"csrf": csrf, "basis": basis, "aktion": action, **data}
    )


def tick(client: httpx.Client, token: str, items: dict[str, str]) -> httpx.Response:
    _, csrf, _ = form_page(client, token)
    data: dict[str, Any] = {"csrf": csrf, "erledigt": list(items)}
    data.update({f"notiz.{k}": v for k, v in items.items() if v})
    return client.post(f"/p/{token}/checkliste", data=data)


# -- servers -----------------------------------------------------------------------------------


def wait_for(url: str, timeout: float = 20) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    fail(f"{url} antwortet nicht nach {timeout} s")


@contextmanager
def portal_process(env: dict[str, str], port: int, log: Path) -> Any:
    """`efa portal` as a subprocess (the real command), its output into LOG."""
    with log.open("w") as handle:
        process = subprocess.Popen(
            [str(BIN / "efa"), "portal", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/healthz")
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def preview_server(data_dir: Path, errors_token: str) -> Any:
    """An in-process portal with one extra GET route that shows a form with errors.

    Chromium's --screenshot can only GET, and the error page is the answer to a POST; this
    route (only in this script) runs the same handler with a fixed invalid form.
    """
    os.environ["EFA_DATA_DIR"] = str(data_dir)
    import uvicorn
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import FormData
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from efa_rollout.db import session_scope
    from efa_rollout.portal.app import Refusal, create_app

    domain = "schwaebisch-gmuend.example"

    async def errors(request: Request) -> Response:
        portal = request.app.state.portal
        token = request.path_params["token"]

        def work() -> Response:
            with session_scope(portal.engine) as session:
                target = portal.target_for(session, token)
                assert not isinstance(target, Refusal)
                form = FormData([("aktion", "absenden"), *with_errors(domain).items()])
                return portal.save_answers(session, target, token, form)

        return await run_in_threadpool(work)

    app = create_app(extra_routes=[Route("/vorschau/fehler/{token}", errors)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(f"http://127.0.0.1:{port}/healthz")
    try:
        yield f"http://127.0.0.1:{port}/vorschau/fehler/{errors_token}"
    finally:
        server.should_exit = True
        thread.join(10)


def screenshot(url: str, target: Path, profile: Path, height: int = 2400) -> None:
    if not Path(CHROMIUM).exists():
        fail("Chromium fehlt: apt-get install -y chromium")
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={target}",
            f"--window-size=1200,{height}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    if not target.exists() or target.stat().st_size < 10_000:
        fail(f"Screenshot {target} fehlt oder ist leer")
    say(f"Screenshot: {target.relative_to(ROOT)}")


def check_print(url: str, token: str, tmp: Path) -> None:
    """The printed page (PDF) has page numbers and neither the link nor its token."""
    if not shutil.which("pdftotext"):
        say("pdftotext fehlt (apt-get install poppler-utils): Druckprüfung übersprungen")
        return
    pdf = tmp / "druck.pdf"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp / 'chromium-print'}",
            f"--print-to-pdf={pdf}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    if token in text or "/p/" in text:
        fail("Der Ausdruck enthält den persönlichen Link")
    if "Seite 1 von" not in text or "Gemeinde Essingen" not in text:
        fail("Der Ausdruck hat keine Seitenzahlen oder keinen Inhalt")
    say(f"Ausdruck: {text.count('Seite ')} Seiten mit Seitenzahl, ohne Link")


# -- the run -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="Temporären Ordner behalten.")
    parser.add_argument("--no-screenshots", action="store_true", help="Keine Bildschirmfotos.")
    options = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="efa-e2e-portal-"))
    data_dir = tmp / "data"
    portal_port = free_port()
    env = {
        **os.environ,
        "EFA_DATA_DIR": str(data_dir),
        "EFA_PORTAL_BASE_URL": f"http://127.0.0.1:{portal_port}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    for name in ("EFA_DATABASE_URL", "EFA_SMTP_URL", "EFA_MAIL_DIR"):
        env.pop(name, None)
    os.environ.update({k: v for k, v in env.items() if k.startswith("EFA_")})
    started = time.monotonic()
    try:
        say(f"Datenordner {data_dir}")
        import_directory(env, tmp)

        go_live = next_weekday(date.today() + timedelta(weeks=16))
        result = efa(
            "campaign",
            "create",
            "ewa",
            "--district",
            DISTRICT,
            "--go-live",
            go_live.isoformat(),
            "--name",
            CAMPAIGN,
            env=env,
        )
        campaign = re.search(r"»([^«]+)«", result.stdout)
        campaign_id = campaign.group(1) if campaign else CAMPAIGN
        say(f"Kampagne {campaign_id} angelegt, Go-Live {go_live:%d.%m.%Y}")
        efa("campaign", "start", campaign_id, "--no-prefect", env=env)
        say("Kampagne gestartet")

        with smtp_sink() as (sink, smtp_port):
            mail_env = {**env, "EFA_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}"}
            efa("mail", "deliver", env=mail_env)
            requests = sink.of_kind("information_request")
            if not requests:
                fail("keine Informationsanfrage im SMTP-Postfach angekommen")
            say(f"{len(requests)} Informationsanfragen zugestellt")
            links: dict[str, str] = {}
            for message in requests:
                found = re.search(
                    rf"http://127\.0\.0\.1:{portal_port}/p/([A-Za-z0-9_-]+)", body_text(message)
                )
                if not found:
                    fail(f"kein Portal-Link in der Mail an {message['To']}")
                links[str(message["X-EfA-Municipality"])] = found.group(1)
            for ags in (*COMPLETE, WITH_ERRORS, DRAFT_ONLY, EMPTY):
                if ags not in links:
                    fail(f"kein Link für {ags}")

            log = tmp / "portal.log"
            with (
                portal_process(env, portal_port, log) as base,
                httpx.Client(base_url=base, timeout=20) as client,
            ):
                # security spot checks against the real server
                bad = client.get("/p/" + "A" * 32)
                if bad.status_code != 404 or "Essingen" in bad.text:
                    fail(f"falscher Link: {bad.status_code}")
                page = client.get(f"/p/{links[EMPTY]}")
                for header in ("content-security-policy", "x-frame-options", "referrer-policy"):
                    if header not in page.headers:
                        fail(f"Kopfzeile {header} fehlt")
                if "Gemeinde Mögglingen" not in page.text:
                    fail("Die Seite von Mögglingen zeigt nicht Mögglingen")

                for ags, name in COMPLETE.items():
                    domain = re.sub(r"[^a-z]+", "-", name.lower()) + ".example"
                    response = post_answers(
                        client, links[ags], complete_answers(domain), "absenden"
                    )
                    if response.status_code != 303:
                        fail(f"Absenden für {name}: {response.status_code}\n{response.text[:2000]}")
                    tick(
                        client,
                        links[ags],
                        {"interesse_bekundet": "", "rollen_benannt": "im Fragebogen genannt"},
                    )
                    say(f"{name}: Fragebogen abgesendet, zwei Punkte abgehakt")
                # Aalen changes one answer afterwards: a new version
                changed = {
                    **complete_answers("aalen.example"),
                    "f.funktionspostfach": "buergerbuero@aalen.example",
                }
                if post_answers(client, links["08136088"], changed, "absenden").status_code != 303:
                    fail("Änderung für Aalen nicht gespeichert")
                html, _, _ = form_page(client, links["08136088"])
                if "Version 2, abgesendet am" not in html:
                    fail("Aalen: Version 2 fehlt")
                say("Aalen: Antwort geändert, Version 2 abgesendet")

                response = client.post(
                    f"/p/{links[WITH_ERRORS]}/fragebogen",
                    data={
                        "csrf": form_page(client, links[WITH_ERRORS])[1],
                        "aktion": "absenden",
                        **with_errors("schwaebisch-gmuend.example"),
                    },
                )
                if response.status_code != 422 or 'role="alert"' not in response.text:
                    fail(f"Fehlerhafte Angaben wurden nicht abgewiesen ({response.status_code})")
                say("Schwäbisch Gmünd: fehlerhafte Angaben abgewiesen (422, Fehlerliste)")
                draft = post_answers(
                    client,
                    links[DRAFT_ONLY],
                    {"f.offene_punkte": "Wir melden uns nach der Gemeinderatssitzung."},
                    "entwurf",
                )
                if draft.status_code != 303:
                    fail("Entwurf nicht gespeichert")
                say("Böbingen an der Rems: Entwurf gespeichert")

                if not options.no_screenshots:
                    profile = tmp / "chromium"
                    screenshot(f"{base}/p/{links[EMPTY]}", SHOTS / "portal-empty.png", profile)
                    screenshot(
                        f"{base}/p/{links['08136021']}?ok=abgesendet",
                        SHOTS / "portal-submitted.png",
                        profile,
                    )
                    with preview_server(data_dir, links[WITH_ERRORS]) as url:
                        screenshot(url, SHOTS / "portal-errors.png", profile)
                    check_print(f"{base}/p/{links['08136021']}", links["08136021"], tmp)

            portal_log = log.read_text(encoding="utf-8")
            leaked = [t for t in links.values() if t in portal_log]
            if leaked:
                fail(f"{len(leaked)} Token im Log des Portals")
            if "/p/***" not in portal_log:
                fail("Zugriffslog des Portals ohne geschwärzte Pfade")
            say("Log des Portals enthält keine Token (Pfade als /p/*** geschwärzt)")

            efa("mail", "deliver", env=mail_env)
            confirmations = sink.of_kind("submission_confirmation")
            expected = len(COMPLETE) + 1
            if len(confirmations) != expected:
                fail(f"{len(confirmations)} Eingangsbestätigungen statt {expected}")
            subject = str(make_header(decode_header(str(confirmations[0]["Subject"]))))
            say(f"{len(confirmations)} Eingangsbestätigungen zugestellt, z. B. »{subject}«")

        efa("campaign", "tick", campaign_id, "--no-prefect", env=env)
        status = json.loads(efa("campaign", "status", campaign_id, "--json", env=env).stdout)
        stages = _stages_by_ags(status)
        for ags, name in COMPLETE.items():
            if stages.get(ags) in (None, "information_collection"):
                fail(f"{name} ist nach dem Tick noch in {stages.get(ags)}")
        for ags in (WITH_ERRORS, DRAFT_ONLY, EMPTY):
            if stages.get(ags) != "information_collection":
                fail(f"{ags} hätte in der Informationserhebung bleiben sollen: {stages.get(ags)}")
        moved = sorted({stages[a] for a in COMPLETE})
        say(
            f"Tick: {', '.join(COMPLETE.values())} → {', '.join(moved)}; die übrigen bleiben in der Informationserhebung"
        )
        say(f"Fertig in {time.monotonic() - started:.0f} s.")
    finally:
        if options.keep:
            say(f"Ordner bleibt erhalten: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _stages_by_ags(status: dict[str, Any]) -> dict[str, str]:
    """AGS → stage from `efa campaign status --json`."""
    return {
        str(m["ags"]): stage
        for stage, entry in status["stages"].items()
        for m in entry.get("municipalities", [])
    }


if __name__ == "__main__":
    main()
