"""Campaign roll-ups: every view checked against a small campaign with known answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from efa_rollout.definitions import CampaignDefinition
from efa_rollout.reports import campaign_rollup, district_overview
from efa_rollout.reports.lights import judge
from efa_rollout.reports.model import MunicipalityStatus
from efa_rollout.reports.timeline import campaign_timeline
from models import (
    Campaign,
    ChecklistItemState,
    Contact,
    Enrolment,
    Event,
    Municipality,
    OutboxMessage,
    QuestionnaireResponse,
)

GO_LIVE = date(2025, 6, 2)
AS_OF = datetime(2025, 5, 20, 7, 0, tzinfo=UTC)  # 09:00 in Berlin, local day 20.05.2025

DEFINITION: dict[str, Any] = {
    "key": "testdienst",
    "title": "Testdienst – Einführung",
    "service": "Testdienst",
    "service_key": "test",
    "stages": [
        "information_collection",
        "summary_distribution",
        "checklist_follow_up",
        "go_live",
        "after_care",
    ],
    "questionnaire": [],
    "checklist": [
        {"key": "kontakte", "title": "Kontakte gemeldet", "due": "-10w"},
        {"key": "schulung", "title": "Schulung besucht", "due": "-2w"},
        {
            "key": "teststellung",
            "title": "Test im Pilotbetrieb",
            "due": "-30d",
            "pilots_only": True,
        },
        {"key": "hinweis", "title": "Hinweis auf der Website", "due": "-1w"},
        {"key": "bestaetigt", "title": "Go-Live bestätigt", "due": "+2w", "required": False},
        {
            "key": "eigene_pruefung",
            "title": "Eigene Prüfung",
            "owner": "Baurechtsamt",
            "due": "-3w",
            "required": False,
            "roles": ["eigene"],
        },
    ],
}


def utc(year: int, month: int, day: int, hour: int = 8, minute: int = 0) -> datetime:
    """An aware UTC datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@dataclass
class Builder:
    """Creates campaign rows directly with the models."""

    session: Session
    campaign_id: str = "test-ostalb"
    _mail_no: int = field(default=0)

    def campaign(self, definition: dict[str, Any] = DEFINITION, go_live: date = GO_LIVE) -> None:
        parsed = CampaignDefinition.model_validate(definition)
        self.session.add(
            Campaign(
                id=self.campaign_id,
                template=parsed.key,
                title=parsed.title,
                service=parsed.service,
                area_code="08136",
                area_name="Ostalbkreis",
                go_live=go_live,
                dates=parsed.resolve_dates(go_live),
                definition=parsed.model_dump(mode="json"),
                status="running",
                started_at=utc(2025, 3, 1),
            )
        )
        self.session.flush()

    def municipality(
        self,
        ags: str,
        name: str,
        *,
        association: tuple[str, str] | None = None,
        district: tuple[str, str] = ("08136", "Ostalbkreis"),
        type_code: str = "64",
    ) -> None:
        self.session.add(
            Municipality(
                ags=ags,
                name=name,
                type_code=type_code,
                association_code=association[0] if association else None,
                association_name=association[1] if association else None,
                district_code=district[0],
                district_name=district[1],
                state_code=ags[:2],
                state_name="Baden-Württemberg",
                source="GV100AD_301123.txt",
            )
        )
        self.session.flush()

    def enrol(
        self,
        ags: str,
        stage: str,
        *,
        entered: datetime = utc(2025, 3, 1),
        status: str = "active",
        role: str | None = "landratsamt",
        is_pilot: bool = False,
        go_live: date | None = None,
    ) -> int:
        enrolment = Enrolment(
            campaign_id=self.campaign_id,
            ags=ags,
            stage=stage,
            stage_entered_at=entered,
            status=status,
            role=role,
            is_pilot=is_pilot,
            go_live=go_live,
        )
        self.session.add(enrolment)
        self.session.flush()
        assert enrolment.id is not None
        return enrolment.id

    def tick(self, enrolment_id: int, *keys: str, at: datetime = utc(2025, 4, 1)) -> None:
        for key in keys:
            self.session.add(
                ChecklistItemState(enrolment_id=enrolment_id, item_key=key, done=True, done_at=at)
            )
        self.session.flush()

    def answer(self, enrolment_id: int, *, status: str = "submitted") -> None:
        self.session.add(
            QuestionnaireResponse(
                enrolment_id=enrolment_id,
                version=1,
                status=status,
                answers={"x": "y"},
                source="portal",
                created_at=utc(2025, 3, 5),
            )
        )
        self.session.flush()

    def contact(self, ags: str, *, failed_at: datetime | None = None) -> None:
        self.session.add(
            Contact(
                ags=ags,
                role="Hauptamt",
                email=f"hauptamt{self._next()}@{ags}.example",
                delivery_failed_at=failed_at,
            )
        )
        self.session.flush()

    def mail(
        self,
        ags: str | None,
        status: str,
        *,
        queued: datetime,
        sent: datetime | None = None,
        is_test: bool = False,
    ) -> None:
        number = self._next()
        self.session.add(
            OutboxMessage(
                campaign_id=self.campaign_id,
                ags=ags,
                kind="reminder",
                sequence=number,
                message_id=f"<{number}@test.example>",
                sender="egov@test.example",
                recipients=[f"hauptamt@{ags}.example"],
                subject=f"Testdienst – Erinnerung {number}",
                raw=b"",
                is_test=is_test,
                status=status,
                queued_at=queued,
                sent_at=sent,
                last_error="550 mailbox unavailable" if status != "sent" else None,
            )
        )
        self.session.flush()

    def event(
        self,
        enrolment_id: int,
        kind: str,
        to_stage: str,
        at: datetime,
        from_stage: str | None = None,
    ) -> None:
        self.session.add(
            Event(
                at=at,
                campaign_id=self.campaign_id,
                enrolment_id=enrolment_id,
                actor="test",
                kind=kind,
                from_stage=from_stage,
                to_stage=to_stage,
            )
        )
        self.session.flush()

    def _next(self) -> int:
        self._mail_no += 1
        return self._mail_no


ROSENSTEIN = ("5004", "GVV Rosenstein")
BOPFINGEN = ("5002", "VVG Bopfingen")


def build_known_campaign(session: Session) -> Builder:
    """Eight municipalities whose every figure is worked out by hand in the tests below."""
    b = Builder(session)
    b.campaign()
    for ags, name, association, district in [
        ("08136088", "Aalen", None, ("08136", "Ostalbkreis")),
        ("08136002", "Abtsgmünd", None, ("08136", "Ostalbkreis")),
        ("08136007", "Bartholomä", ROSENSTEIN, ("08136", "Ostalbkreis")),
        ("08136009", "Böbingen an der Rems", ROSENSTEIN, ("08136", "Ostalbkreis")),
        ("08136010", "Bopfingen", BOPFINGEN, ("08136", "Ostalbkreis")),
        ("08136065", "Riesbürg", BOPFINGEN, ("08136", "Ostalbkreis")),
        ("08135010", "Dischingen", None, ("08135", "Heidenheim")),
        ("08136027", "Heubach", ROSENSTEIN, ("08136", "Ostalbkreis")),
    ]:
        b.municipality(ags, name, association=association, district=district)
    b.municipality("08136999", "Gemeindefreies Gebiet", type_code="65")

    # Aalen: own building authority; only its optional own item is overdue → yellow.
    aalen = b.enrol("08136088", "checklist_follow_up", role="eigene", entered=utc(2025, 4, 10))
    b.tick(aalen, "kontakte", "schulung", "hinweis")
    b.answer(aalen)
    b.contact("08136088")
    # Abtsgmünd: everything due is done → green; one mail after AS_OF is ignored.
    abtsgmuend = b.enrol("08136002", "checklist_follow_up", entered=utc(2025, 5, 19, 23, 30))
    b.tick(abtsgmuend, "kontakte", "schulung", "hinweis")
    b.answer(abtsgmuend)
    b.contact("08136002", failed_at=utc(2025, 6, 1))  # bounces only after AS_OF
    b.mail("08136002", "sent", queued=utc(2025, 5, 2), sent=utc(2025, 5, 2, 8, 5))
    b.mail("08136002", "sent", queued=utc(2025, 5, 25), sent=utc(2025, 5, 25, 8, 5))
    # Bartholomä: pilot with its own go-live 05.05.2025; training ticked only after AS_OF,
    # and its last mail failed → red.
    bartholomae = b.enrol("08136007", "go_live", is_pilot=True, go_live=date(2025, 5, 5))
    b.tick(bartholomae, "kontakte", "teststellung", "hinweis")
    b.tick(bartholomae, "schulung", at=utc(2025, 5, 25))
    b.answer(bartholomae)
    b.contact("08136007")
    b.mail("08136007", "sent", queued=utc(2025, 5, 1), sent=utc(2025, 5, 1, 8, 1))
    b.mail("08136007", "failed_permanently", queued=utc(2025, 5, 10))
    # Böbingen: paused, nothing done → grey, not in the overdue list.
    b.enrol("08136009", "information_collection", status="paused")
    b.contact("08136009")
    # Bopfingen: no answers (a draft only) after the deadline, no contact → red.
    bopfingen = b.enrol("08136010", "information_collection")
    b.answer(bopfingen, status="draft")
    # Riesbürg: not applicable → grey, no figures, not in the without-contact list.
    b.enrol("08136065", "information_collection", status="not_applicable")
    # Dischingen (other district): every address bounced; an unknown mail later delivered.
    dischingen = b.enrol("08135010", "summary_distribution")
    b.tick(dischingen, "kontakte", "schulung", "hinweis")
    b.answer(dischingen)
    b.contact("08135010", failed_at=utc(2025, 5, 1))
    b.contact("08135010", failed_at=utc(2025, 5, 2))
    b.mail("08135010", "unknown", queued=utc(2025, 4, 1))
    b.mail("08135010", "sent", queued=utc(2025, 4, 15), sent=utc(2025, 4, 15, 9))
    b.mail("08135010", "failed_permanently", queued=utc(2025, 5, 21))  # after AS_OF
    b.mail("08135010", "failed_permanently", queued=utc(2025, 5, 3), is_test=True)
    # Heubach: the website notice is due 26.05.2025, within 10 days → yellow.
    heubach = b.enrol("08136027", "checklist_follow_up")
    b.tick(heubach, "kontakte", "schulung")
    b.answer(heubach)
    b.contact("08136027")
    session.commit()
    return b


@pytest.fixture
def known(session: Session) -> Builder:
    """The known campaign in the test database."""
    return build_known_campaign(session)


def by_ags(rollup: Any) -> dict[str, Any]:
    return {m.ags: m for m in rollup.municipalities}


def test_stage_counts_include_empty_stages_and_keep_paused_apart(
    session: Session, known: Builder
) -> None:
    rollup = campaign_rollup(session, known.campaign_id, as_of=AS_OF)
    counts = {stage: s.count for stage, s in rollup.stages.items()}
    assert counts == {
        "information_collection": 1,
        "summary_distribution": 1,
        "checklist_follow_up": 3,
        "go_live": 1,
        "after_care": 0,
    }
    assert list(rollup.stages) == list(counts)  # pipeline order
    assert rollup.total == 8
    assert rollup.paused.count == 1 and rollup.paused.municipalities == [
        {"ags": "08136009", "name": "Böbingen an der Rems"}
    ]
    assert rollup.not_applicable.count == 1
    assert rollup.stages["checklist_follow_up"].share == pytest.approx(3 / 8)
    assert rollup.stages["checklist_follow_up"]["label"] == "Checklisten-Nachverfolgung"
    assert [m["name"] for m in rollup.stages["checklist_follow_up"].municipalities] == [
        "Aalen",
        "Abtsgmünd",
        "Heubach",
    ]
    data = rollup.to_json()
    assert data["stages"]["go_live"] == {
        "label": "Go-Live",
        "count": 1,
        "share": pytest.approx(1 / 8),
        "municipalities": [{"ags": "08136007", "name": "Bartholomä"}],
    }


def test_municipality_figures(session: Session, known: Builder) -> None:
    rows = by_ags(campaign_rollup(session, known.campaign_id, as_of=AS_OF))
    assert set(rows) == {
        "08136088",
        "08136002",
        "08136007",
        "08136009",
        "08136010",
        "08136065",
        "08135010",
        "08136027",
    }
    aalen = rows["08136088"]
    assert (aalen.items_total, aalen.items_open, aalen.items_overdue) == (5, 2, 1)
    assert (aalen.required_overdue, aalen.items_due_soon) == (0, 0)
    assert aalen.next_due == date(2025, 6, 16) and aalen.oldest_overdue == date(2025, 5, 12)
    assert aalen.stage_label == "Checklisten-Nachverfolgung" and aalen.days_in_stage == 40
    assert aalen.answered and aalen.last_contact is None

    abtsgmuend = rows["08136002"]
    assert (abtsgmuend.items_total, abtsgmuend.items_open, abtsgmuend.items_overdue) == (4, 1, 0)
    assert abtsgmuend.days_in_stage == 0  # entered 20.05. 01:30 local time
    assert abtsgmuend.last_contact == utc(2025, 5, 2, 8, 5)
    assert abtsgmuend.working_contacts == 1

    bartholomae = rows["08136007"]
    assert bartholomae.go_live == date(2025, 5, 5)
    assert (bartholomae.items_total, bartholomae.items_open) == (5, 2)
    assert (bartholomae.items_overdue, bartholomae.required_overdue) == (2, 1)
    assert bartholomae.failed_mail == 1 and bartholomae.unresolved_failed_mail

    boebingen = rows["08136009"]
    assert (boebingen.items_open, boebingen.items_overdue, boebingen.items_due_soon) == (4, 2, 1)
    assert boebingen.status_label == "pausiert"

    bopfingen = rows["08136010"]
    assert not bopfingen.answered and bopfingen.contacts == 0
    assert (bopfingen.items_overdue, bopfingen.required_overdue) == (2, 2)

    riesbuerg = rows["08136065"]
    assert (riesbuerg.items_total, riesbuerg.items_open) == (0, 0)

    dischingen = rows["08135010"]
    assert (dischingen.contacts, dischingen.working_contacts) == (2, 0)
    # Its unknown mail is no failure; a later mail got through, so nothing is unresolved.
    assert (dischingen.failed_mail, dischingen.unclear_mail) == (0, 1)
    assert not dischingen.unresolved_failed_mail and not dischingen.unresolved_unclear_mail
    assert dischingen.last_contact == utc(2025, 4, 15, 9)

    heubach = rows["08136027"]
    assert (heubach.items_open, heubach.items_due_soon, heubach.next_due) == (
        2,
        1,
        date(2025, 5, 26),
    )


def test_traffic_lights(session: Session, known: Builder) -> None:
    rollup = campaign_rollup(session, known.campaign_id, as_of=AS_OF)
    rows = by_ags(rollup)
    lights = {ags: m.light for ags, m in rows.items()}
    assert lights == {
        "08136088": "yellow",
        "08136002": "green",
        "08136007": "red",
        "08136009": "grey",
        "08136010": "red",
        "08136065": "grey",
        "08135010": "red",
        "08136027": "yellow",
    }
    assert rollup.lights == {"red": 3, "yellow": 2, "green": 1, "grey": 2}
    assert rows["08136007"].reasons == ["1 Punkt überfällig (Pflicht)", "Mail nicht zugestellt"]
    assert rows["08136010"].reasons == [
        "2 Punkte überfällig (Pflicht)",
        "Fragebogen fehlt, Frist 10.03.2025 abgelaufen",
        "keine Ansprechperson",
    ]
    assert rows["08135010"].reasons == ["keine zustellbare Adresse"]
    assert rows["08136088"].reasons == ["1 Punkt überfällig (freiwillig)"]
    assert rows["08136027"].reasons == ["1 Punkt in den nächsten 10 Tagen fällig"]
    assert rows["08136009"].reasons == ["Teilnahme pausiert"]


def _aalen(stage: str, stage_label: str, **fields: Any) -> MunicipalityStatus:
    """Aalen, active in STAGE with one working contact; FIELDS override the rest."""
    return MunicipalityStatus(
        ags="08136088",
        name="Aalen",
        association_code=None,
        association_name=None,
        district_code="08136",
        district_name="Ostalbkreis",
        role=None,
        is_pilot=False,
        status="active",
        status_label="aktiv",
        stage=stage,
        stage_label=stage_label,
        stage_entered=date(2025, 3, 1),
        days_in_stage=1,
        go_live=GO_LIVE,
        contacts=1,
        working_contacts=1,
        **fields,
    )


def test_yellow_while_answers_missing_before_deadline() -> None:
    m = _aalen("information_collection", "Informationserhebung")
    deadline = date(2025, 3, 10)
    assert judge(m, today=date(2025, 3, 10), deadline=deadline) == (
        "yellow",
        ["Fragebogen noch nicht beantwortet (Frist 10.03.2025)"],
    )
    assert judge(m, today=date(2025, 3, 11), deadline=deadline)[0] == "red"
    m.answered = True
    assert judge(m, today=date(2025, 3, 11), deadline=deadline) == ("green", [])


def test_unclear_delivery_is_yellow_and_a_failure_red() -> None:
    m = _aalen(
        "checklist_follow_up",
        "Checklisten-Nachverfolgung",
        answered=True,
        unclear_mail=1,
        unresolved_unclear_mail=True,
    )
    today = date(2025, 3, 10)
    assert judge(m, today=today, deadline=None) == ("yellow", ["Zustellung einer Mail ungeklärt"])
    m.failed_mail, m.unresolved_failed_mail = 1, True
    assert judge(m, today=today, deadline=None) == ("red", ["Mail nicht zugestellt"])


def test_overdue_list(session: Session, known: Builder) -> None:
    rollup = campaign_rollup(session, known.campaign_id, as_of=AS_OF)
    assert [(o.name, o.item_key, o.due, o.days_overdue, o.required) for o in rollup.overdue] == [
        ("Bopfingen", "kontakte", date(2025, 3, 24), 57, True),
        ("Bartholomä", "schulung", date(2025, 4, 21), 29, True),
        ("Aalen", "eigene_pruefung", date(2025, 5, 12), 8, False),
        ("Bartholomä", "bestaetigt", date(2025, 5, 19), 1, False),
        ("Bopfingen", "schulung", date(2025, 5, 19), 1, True),
    ]
    assert rollup.overdue[2].owner == "Baurechtsamt"


def test_failed_mail_and_without_contact(session: Session, known: Builder) -> None:
    rollup = campaign_rollup(session, known.campaign_id, as_of=AS_OF)
    assert [(f.name, f.status, f.resolved) for f in rollup.failed_mail] == [
        ("Bartholomä", "failed_permanently", False),
        ("Dischingen", "unknown", True),
    ]
    assert rollup.failed_mail[1].status_label == "Zustellung ungeklärt"
    assert [(w.name, w.reason) for w in rollup.without_contact] == [
        ("Bopfingen", "keine Ansprechperson hinterlegt"),
        ("Dischingen", "alle Adressen unzustellbar"),
    ]


def test_group_rollups(session: Session, known: Builder) -> None:
    rollup = campaign_rollup(session, known.campaign_id, as_of=AS_OF)
    associations = {(g.key, g.label): g for g in rollup.associations}
    assert list(associations) == [
        ("081365004", "GVV Rosenstein"),
        ("08135-ohne", "ohne Gemeindeverband (Heidenheim)"),
        ("08136-ohne", "ohne Gemeindeverband (Ostalbkreis)"),
        ("081365002", "VVG Bopfingen"),
    ]
    rosenstein = associations[("081365004", "GVV Rosenstein")]
    assert rosenstein.total == 3
    assert rosenstein.stages == {"go_live": 1, "paused": 1, "checklist_follow_up": 1}
    assert rosenstein.lights == {"red": 1, "yellow": 1, "green": 0, "grey": 1}
    assert rosenstein.answered == 2 and rosenstein.answered_share == pytest.approx(2 / 3)
    assert (rosenstein.items_open, rosenstein.items_overdue) == (4, 2)  # paused not counted
    bopfingen = associations[("081365002", "VVG Bopfingen")]
    assert bopfingen.stages == {"information_collection": 1, "not_applicable": 1}

    roles = {g.key: g for g in rollup.roles}
    assert set(roles) == {"eigene", "landratsamt"}
    assert roles["eigene"].label == "Eigene" and roles["eigene"].total == 1
    assert roles["landratsamt"].total == 7
    assert (roles["landratsamt"].items_open, roles["landratsamt"].items_overdue) == (10, 4)

    districts = {g.key: (g.label, g.total, g.lights["red"]) for g in rollup.districts}
    assert districts == {"08135": ("Heidenheim", 1, 1), "08136": ("Ostalbkreis", 7, 2)}


def test_timeline_replays_the_event_log(session: Session) -> None:
    b = Builder(session, campaign_id="verlauf")
    b.campaign()
    for ags in ("08136001", "08136002", "08136003"):
        b.municipality(ags, f"Gemeinde {ags}")
    one = b.enrol("08136001", "checklist_follow_up")
    two = b.enrol("08136002", "summary_distribution")
    three = b.enrol("08136003", "information_collection")
    b.event(one, "enrolled", "information_collection", utc(2025, 3, 1, 9))
    b.event(two, "enrolled", "information_collection", utc(2025, 3, 1, 9))
    # 23:30 UTC on 02.03. is 00:30 on 03.03. in Berlin
    b.event(one, "stage_changed", "summary_distribution", utc(2025, 3, 2, 23, 30))
    b.event(three, "enrolled", "information_collection", utc(2025, 3, 3, 10))
    b.event(two, "status_changed", "paused", utc(2025, 3, 3, 11))  # not a stage move
    b.event(one, "stage_changed", "checklist_follow_up", utc(2025, 3, 4, 10))
    b.event(two, "stage_changed", "summary_distribution", utc(2025, 3, 4, 12))
    b.event(three, "stage_changed", "summary_distribution", utc(2025, 3, 6, 12))  # after AS_OF
    session.commit()
    order = ["information_collection", "summary_distribution", "checklist_follow_up"]
    points = campaign_timeline(session, "verlauf", order, as_of=utc(2025, 3, 5, 12))
    assert [(p.day, [p.stages[s] for s in order]) for p in points] == [
        (date(2025, 3, 1), [2, 0, 0]),
        (date(2025, 3, 2), [2, 0, 0]),
        (date(2025, 3, 3), [2, 1, 0]),
        (date(2025, 3, 4), [1, 1, 1]),
        (date(2025, 3, 5), [1, 1, 1]),
    ]
    rollup = campaign_rollup(session, "verlauf", as_of=utc(2025, 3, 5, 12))
    assert rollup.timeline[-1].stages["after_care"] == 0


def test_unknown_campaign_is_a_user_error(session: Session) -> None:
    from efa_rollout.errors import UserError

    with pytest.raises(UserError, match="Die Kampagne »gibt-es-nicht« gibt es nicht"):
        campaign_rollup(session, "gibt-es-nicht", as_of=AS_OF)


def test_naive_as_of_is_refused(session: Session, known: Builder) -> None:
    with pytest.raises(ValueError, match="aware"):
        campaign_rollup(session, known.campaign_id, as_of=datetime(2025, 5, 20))


def test_district_overview(session: Session, known: Builder) -> None:
    other = Builder(session, campaign_id="zweite")
    other.campaign()
    other.enrol("08136088", "go_live")
    session.commit()
    overview = district_overview(session, area_code="08136")
    assert overview.area_name == "Ostalbkreis"
    assert [c.id for c in overview.campaigns] == ["test-ostalb", "zweite"]
    names = [row.name for row in overview.rows]
    assert "Dischingen" not in names and "Gemeindefreies Gebiet" not in names
    assert names[:3] == ["Aalen", "Abtsgmünd", "Bartholomä"]
    aalen = overview.rows[0]
    assert aalen.cells["test-ostalb"].text == "Checklisten-Nachverfolgung"
    assert aalen.cells["zweite"].text == "Go-Live"
    boebingen = next(r for r in overview.rows if r.ags == "08136009")
    assert boebingen.cells["test-ostalb"].text == "Informationserhebung (pausiert)"
    assert "zweite" not in boebingen.cells
    first = overview.campaigns[0]
    assert first.enrolled == 7 and first.stage_counts["checklist_follow_up"] == 3
    assert overview.attribution and "Destatis" in overview.attribution
    everything = district_overview(session)
    assert (
        len(everything.rows) == 8 and everything.area_name == "Baden-Württemberg"
    )  # the state all rows are in, not "Deutschland"


def test_rollup_of_a_campaign_started_by_the_engine(efa_env: Path) -> None:
    """The engine's own rows (all items un-ticked, 'enrolled' events) roll up as expected."""
    from efa_rollout.db import get_engine, session_scope
    from efa_rollout.services import campaigns, enrolment, lookup
    from tests.engine_fixtures import VIBA, at, ostalbkreis_with_campaigns

    ostalbkreis_with_campaigns(efa_env)
    engine = get_engine()
    start = at("2023-04-17")
    campaigns.mark_started(engine, VIBA, now=start, actor="test")
    with session_scope(engine) as session:
        pending = campaigns.pending_enrolment_ags(session, lookup.get_campaign(session, VIBA))
    enrolment.enrol_batch(engine, VIBA, pending, now=start, actor="test")
    with session_scope(engine) as session:
        rollup = campaign_rollup(session, VIBA, as_of=at("2023-04-20"))
    assert rollup.total == 34  # the municipalities whose building authority is the Landratsamt
    assert rollup.stages["information_collection"].count == 34
    assert [r.key for r in rollup.roles] == ["landratsamt"]
    assert [p.stages["information_collection"] for p in rollup.timeline] == [34, 34, 34, 34]
    assert rollup.overdue == [] and rollup.failed_mail == []
    assert all(m.items_open == m.items_total > 0 for m in rollup.municipalities)
