"""Fixtures for the portal tests: two municipalities, two campaigns, the app under a client.

``portal`` drives the app in-process with Starlette's TestClient (the same ASGI app, middleware
and exception handlers); ``live_portal`` serves it with uvicorn on loopback, for the tests whose
subject is the real server (its access log, request bodies streamed over a socket, proxies).

Essingen is the municipality under test; Aalen is "the other one" whose data must never show
up in Essingen's pages (and the other way round). Aalen's answers carry marker strings so a
test can assert they are absent from a response body.
"""

from __future__ import annotations

import functools
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine
from sqlmodel import Session, select
from starlette.testclient import TestClient

from efa_rollout.definitions import CampaignDefinition, get_definition
from efa_rollout.portal.app import create_app
from efa_rollout.portal.security import FailureBrake
from efa_rollout.services.answers import save_answers
from efa_rollout.services.links import issue_token
from models import (
    Campaign,
    ChecklistItemState,
    Contact,
    Enrolment,
    Municipality,
    QuestionnaireResponse,
    utcnow,
)

ESSINGEN = "08136021"
AALEN = "08136088"
EWA = "ewa-ostalbkreis"
VIBA = "viba-ostalbkreis"
SECRET = b"test-secret-for-portal-csrf-0123456789"

#: Marker strings in Aalen's data: never allowed in a response to Essingen's link.
AALEN_MARKERS = ("Zora Aalenerin", "geheim-aalen@aalen.example", "AALEN-INTERN")


def _municipality(ags: str, name: str, type_code: str, type_label: str) -> Municipality:
    return Municipality(
        ags=ags,
        name=name,
        type_code=type_code,
        type_label=type_label,
        district_code=ags[:5],
        district_name="Ostalbkreis",
        state_code=ags[:2],
        state_name="Baden-Württemberg",
        attributes={"baurechtsbehoerde": "landratsamt"},
    )


@functools.cache
def _definition(key: str) -> CampaignDefinition:
    """The shipped definition KEY, parsed once per run (the world is built for every test)."""
    return get_definition(key)


def _campaign(key: str, campaign_id: str, go_live: date) -> Campaign:
    d = _definition(key)
    return Campaign(
        id=campaign_id,
        template=d.key,
        title=d.title,
        service=d.service,
        area_code="08136",
        area_name="Ostalbkreis",
        go_live=go_live,
        dates=d.resolve_dates(go_live),
        definition=d.model_dump(mode="json"),
        status="running",
    )


def _enrol(
    session: Session, campaign: Campaign, ags: str, now: datetime, role: str | None = None
) -> Enrolment:
    d = _definition(campaign.template)
    enrolment = Enrolment(
        campaign_id=campaign.id,
        ags=ags,
        stage="information_collection",
        stage_entered_at=now,
        role=role,
    )
    session.add(enrolment)
    session.flush()
    items = d.items_for(role, False)
    for item in items:
        session.add(
            ChecklistItemState(enrolment_id=enrolment.id, item_key=item.key, updated_at=now)
        )
    enrolment.required_open = sum(1 for i in items if i.required)
    session.add(enrolment)
    return enrolment


def contact_form(prefix: str, name: str, email: str, **extra: str) -> dict[str, str]:
    """Form fields of one contact input group."""
    data = {
        f"{prefix}.salutation": extra.get("salutation", "Frau"),
        f"{prefix}.name": name,
        f"{prefix}.function": extra.get("function", "Sachbearbeitung"),
        f"{prefix}.email": email,
        f"{prefix}.phone": extra.get("phone", "07361 1234-0"),
    }
    return data


def complete_ewa_form() -> dict[str, str]:
    """Every required eWA field, valid."""
    data: dict[str, str] = {}
    for key, name in (
        ("projektleitung", "Anna Projekt"),
        ("kontakt_technik", "Tim Technik"),
        ("kontakt_fachlich", "Fiona Fach"),
        ("kontakt_datenschutz", "Dana Schutz"),
        ("bearbeitung_1704", "Bernd Bearbeiter"),
        ("bearbeitung_1704_vertretung", "Vera Vertretung"),
    ):
        local = name.lower().replace(" ", ".")
        data.update(contact_form(f"f.{key}", name, f"{local}@essingen.example"))
    data.update(
        {
            "f.funktionspostfach": "meldeamt@essingen.example",
            "f.meldesoftware": "ok_ewo",
            "f.ewa_modul_bestellt": "ja",
            "f.routing_delegiert": "nein",
            "f.wunsch_stichtag": "01.10.2025",
            "f.muellveranlagung": "Formular der Abfallwirtschaft bei der Anmeldung per Post.",
        }
    )
    return data


@dataclass
class World:
    """The test data: ids and the live tokens of both municipalities."""

    engine: Engine
    now: datetime
    essingen_token: str
    aalen_token: str
    viba_token: str
    essingen_enrolment: int
    aalen_enrolment: int
    aalen_contact_id: int

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def responses(self, enrolment_id: int) -> list[QuestionnaireResponse]:
        with self.session() as session:
            return list(
                session.exec(
                    select(QuestionnaireResponse)
                    .where(QuestionnaireResponse.enrolment_id == enrolment_id)
                    .order_by(QuestionnaireResponse.version)  # type: ignore[arg-type]
                ).all()
            )


@pytest.fixture
def world(engine: Engine) -> World:
    """Essingen and Aalen in the eWA campaign, Essingen also in ViBa BW; Aalen has answers."""
    now = utcnow()
    go_live = (now + timedelta(days=120)).date()
    with Session(engine, expire_on_commit=False) as session:
        session.add(_municipality(ESSINGEN, "Essingen", "64", "Gemeinde"))
        session.add(_municipality(AALEN, "Aalen", "67", "Große Kreisstadt"))
        session.add(_campaign("ewa", EWA, go_live))
        session.add(_campaign("viba-bw", VIBA, go_live))
        session.flush()
        session.add(
            Contact(
                ags=ESSINGEN,
                role="Meldebehörde",
                email="meldeamt@essingen.example",
                is_shared_mailbox=True,
            )
        )
        session.add(
            Contact(
                ags=ESSINGEN,
                role="Hauptamt",
                salutation="Herr",
                name="Hans Haupt",
                function="Hauptamtsleiter",
                email="hans.haupt@essingen.example",
            )
        )
        aalen_contact = Contact(
            ags=AALEN,
            role="Meldebehörde",
            salutation="Frau",
            name="Zora Aalenerin",
            function="AALEN-INTERN",
            email="geheim-aalen@aalen.example",
        )
        session.add(aalen_contact)
        essingen = _enrol(session, session.get(Campaign, EWA), ESSINGEN, now)  # type: ignore[arg-type]
        aalen = _enrol(session, session.get(Campaign, EWA), AALEN, now)  # type: ignore[arg-type]
        _enrol(session, session.get(Campaign, VIBA), ESSINGEN, now, role="landratsamt")  # type: ignore[arg-type]
        session.flush()
        save_answers(
            session,
            enrolment=aalen,
            answers={
                "funktionspostfach": "geheim-aalen@aalen.example",
                "projektleitung": {"name": "Zora Aalenerin", "email": "geheim-aalen@aalen.example"},
                "offene_punkte": "AALEN-INTERN: nur für Aalen",
            },
            submit=False,
            source="cli",
            author="test",
            now=now,
        )
        tokens = {
            key: issue_token(session, campaign_id=c, ags=a, now=now, valid_days=180)
            for key, c, a in (("e", EWA, ESSINGEN), ("a", EWA, AALEN), ("v", VIBA, ESSINGEN))
        }
        session.commit()
        assert essingen.id and aalen.id and aalen_contact.id
        return World(
            engine=engine,
            now=now,
            essingen_token=tokens["e"],
            aalen_token=tokens["a"],
            viba_token=tokens["v"],
            essingen_enrolment=essingen.id,
            aalen_enrolment=aalen.id,
            aalen_contact_id=aalen_contact.id,
        )


@dataclass
class LivePortal:
    """The portal app and an httpx client for it (in-process, or over loopback)."""

    url: str
    client: httpx.Client
    brake: FailureBrake

    def page(self, token: str) -> httpx.Response:
        return self.client.get(f"/p/{token}")

    def csrf(self, token: str) -> str:
        return csrf_of(self.page(token).text)

    def post(self, token: str, form: str, data: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.client.post(f"/p/{token}/{form}", data=data, **kwargs)

    def answers(self, token: str, data: dict[str, Any], action: str = "entwurf") -> httpx.Response:
        page = self.page(token).text
        payload = {"csrf": csrf_of(page), "basis": basis_of(page), "aktion": action, **data}
        return self.post(token, "fragebogen", payload)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no CSRF field in page"
    return match.group(1)


def basis_of(html: str) -> str:
    match = re.search(r'name="basis" value="(\d+)"', html)
    assert match, "no basis field in page"
    return match.group(1)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve APP with uvicorn on a free loopback port in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", proxy_headers=False, server_header=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("portal did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def brake() -> FailureBrake:
    """A brake without delays (tests stay fast) that blocks after 5 bad links a minute."""
    # max_delay too: a blocked answer otherwise waits it out (2 s) before its 429.
    return FailureBrake(max_failures=5, window=60, base_delay=0.0, max_delay=0.0)


#: The base URL of the in-process client (requests never leave the test process).
IN_PROCESS_URL = "http://testserver"


@pytest.fixture
def portal(engine: Engine, world: World, brake: FailureBrake) -> Iterator[LivePortal]:
    """The real app driven in-process by Starlette's TestClient (an httpx client)."""
    app = create_app(engine=engine, secret=SECRET, brake=brake)
    # Server errors become the 500 page, as a served app answers them.
    with TestClient(
        app, base_url=IN_PROCESS_URL, follow_redirects=False, raise_server_exceptions=False
    ) as client:
        yield LivePortal(IN_PROCESS_URL, client, brake)


@pytest.fixture
def live_portal(engine: Engine, world: World, brake: FailureBrake) -> Iterator[LivePortal]:
    """The real app served by uvicorn on loopback, with an httpx client."""
    app = create_app(engine=engine, secret=SECRET, brake=brake)
    with (
        serve(app) as url,
        httpx.Client(base_url=url, follow_redirects=False, timeout=10) as client,
    ):
        yield LivePortal(url, client, brake)


def assert_no_aalen_data(body: str) -> None:
    """None of Aalen's marker strings appear in BODY."""
    for marker in AALEN_MARKERS:
        assert marker not in body, f"leaked: {marker}"
