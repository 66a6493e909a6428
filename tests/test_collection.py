"""Information collection: typed validation, answer versions, checklist ticks."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select
from test_collection_support import (
    NOW,
    complete_ewa_answers,
    contact,
    enrol,
    make_campaign,
)

from efa_rollout.definitions import CampaignDefinition, get_definition
from efa_rollout.errors import UserError
from efa_rollout.services.answers import (
    AnswersInvalid,
    format_answer,
    latest_response,
    save_answers,
    validate_answers,
)
from efa_rollout.services.checklist import checklist_view, set_checklist_item
from efa_rollout.services.lookup import find_enrolment
from models import ChecklistItemState, Enrolment, Event, QuestionnaireResponse

AALEN = "08136088"
ESSINGEN = "08136019"


@pytest.fixture(scope="module")
def ewa() -> CampaignDefinition:
    return get_definition("ewa")


@pytest.fixture(scope="module")
def viba() -> CampaignDefinition:
    return get_definition("viba-bw")


def check(definition: CampaignDefinition, answers: dict[str, Any], **kw: Any) -> Any:
    kw.setdefault("role", None)
    kw.setdefault("is_pilot", False)
    kw.setdefault("submit", False)
    return validate_answers(definition, answers=answers, **kw)


# --- validation per field type -------------------------------------------------------------


def test_email_is_normalised_and_bad_one_refused_in_german(ewa: CampaignDefinition) -> None:
    ok = check(ewa, {"funktionspostfach": " Meldeamt@Aalen.DE "})
    assert ok.clean == {"funktionspostfach": "Meldeamt@aalen.de"}
    bad = check(ewa, {"funktionspostfach": "meldeamt-at-aalen"})
    assert "keine gültige E-Mail-Adresse" in bad.errors["funktionspostfach"]
    assert bad.clean == {}


@pytest.mark.parametrize("value", ["07361 52-0", "+49 (7361) 52/1234", "0711-123"])
def test_phone_accepts_digits_spaces_and_separators(value: str) -> None:
    from efa_rollout.services.contacts import parse_contact

    assert parse_contact({"name": "A", "email": "a@b.de", "phone": value})["phone"] == value


@pytest.mark.parametrize("value", ["07361 52 0 Durchwahl", "abc", "++", "12"])
def test_phone_refuses_letters_and_too_few_digits(value: str) -> None:
    from efa_rollout.services.contacts import parse_contact
    from efa_rollout.services.fields import InvalidValue

    with pytest.raises(InvalidValue, match="Telefon"):
        parse_contact({"name": "A", "email": "a@b.de", "phone": value})


@pytest.mark.parametrize(
    ("value", "iso"),
    [("15.07.2025", "2025-07-15"), ("2025-07-15", "2025-07-15"), (date(2025, 7, 15), "2025-07-15")],
)
def test_date_both_formats_to_iso(ewa: CampaignDefinition, value: Any, iso: str) -> None:
    assert check(ewa, {"wunsch_stichtag": value}).clean == {"wunsch_stichtag": iso}


@pytest.mark.parametrize("value", ["31.02.2025", "15/07/2025", "morgen"])
def test_bad_dates_refused(ewa: CampaignDefinition, value: str) -> None:
    errors = check(ewa, {"wunsch_stichtag": value}).errors
    assert "kein gültiges Datum (erwartet TT.MM.JJJJ oder JJJJ-MM-TT)" in errors["wunsch_stichtag"]


def test_choice_by_value_or_label_and_refused_otherwise(ewa: CampaignDefinition) -> None:
    assert check(ewa, {"meldesoftware": "ok_ewo"}).clean == {"meldesoftware": "ok_ewo"}
    assert check(ewa, {"meldesoftware": "ok.ewo"}).clean == {"meldesoftware": "ok_ewo"}
    errors = check(ewa, {"meldesoftware": "MESO"}).errors
    assert errors["meldesoftware"].startswith("»MESO« ist keine der möglichen Antworten")
    assert "»OK.EWO«" in errors["meldesoftware"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ja", True),
        ("Nein", False),
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        (True, True),
        (False, False),
        (1, True),
        (0, False),
    ],
)
def test_yesno(ewa: CampaignDefinition, value: Any, expected: bool) -> None:
    assert check(ewa, {"ewa_modul_bestellt": value}).clean == {"ewa_modul_bestellt": expected}


def test_yesno_refuses_other_words(ewa: CampaignDefinition) -> None:
    errors = check(ewa, {"ewa_modul_bestellt": "vielleicht"}).errors
    assert errors == {
        "ewa_modul_bestellt": "»vielleicht« ist keine gültige Antwort (erwartet ja oder nein)."
    }


def test_number_with_german_decimal_comma() -> None:
    definition = _with_number_field()
    assert check(definition, {"anzahl": "3,5"}).clean == {"anzahl": 3.5}
    assert check(definition, {"anzahl": "12"}).clean == {"anzahl": 12}
    assert check(definition, {"anzahl": 7}).clean == {"anzahl": 7}
    assert "keine gültige Zahl" in check(definition, {"anzahl": "zwölf"}).errors["anzahl"]
    assert check(definition, {"anzahl": True}).errors["anzahl"] == "Bitte geben Sie eine Zahl an."


def _with_number_field() -> CampaignDefinition:
    data = get_definition("ewa").model_dump(mode="json")
    data["questionnaire"].append({"key": "anzahl", "label": "Anzahl", "type": "number"})
    return CampaignDefinition.model_validate(data)


def test_contact_as_dict_text_and_json(ewa: CampaignDefinition) -> None:
    expected = {
        "salutation": "Frau",
        "name": "Anna Muster",
        "function": "Hauptamtsleiterin",
        "email": "anna.muster@aalen.de",
        "phone": "07361 52-100",
    }
    as_dict = {
        "salutation": "Frau",
        "name": "Anna Muster",
        "function": "Hauptamtsleiterin",
        "email": "anna.muster@aalen.de",
        "phone": "07361 52-100",
    }
    as_text = (
        "anrede=Frau; name=Anna Muster; funktion=Hauptamtsleiterin; "
        "email=anna.muster@aalen.de; telefon=07361 52-100"
    )
    as_json = (
        '{"salutation": "Frau", "name": "Anna Muster", "function": "Hauptamtsleiterin", '
        '"email": "anna.muster@aalen.de", "phone": "07361 52-100"}'
    )
    for value in (as_dict, as_text, as_json):
        assert check(ewa, {"projektleitung": value}).clean == {"projektleitung": expected}


def test_contact_errors_name_every_problem(ewa: CampaignDefinition) -> None:
    errors = check(
        ewa, {"projektleitung": {"email": "kaputt", "anrede": "Dr", "zimmer": "3"}}
    ).errors
    message = errors["projektleitung"]
    assert "unbekannte Angabe »zimmer«" in message
    assert "Anrede »Dr« ist ungültig" in message
    assert "Name fehlt" in message
    assert "E-Mail: »kaputt« ist keine gültige E-Mail-Adresse" in message
    assert check(ewa, {"projektleitung": "Name=A;E-Mail=a@b.de"}).errors == {}


def test_contact_text_without_equals_is_refused(ewa: CampaignDefinition) -> None:
    message = check(ewa, {"projektleitung": "Anna Muster"}).errors["projektleitung"]
    assert "hat nicht die Form schlüssel=wert" in message


def test_contacts_list_text_and_entry_numbers(viba: CampaignDefinition) -> None:
    ok = check(
        viba,
        {"nutzer": "name=A;email=a@gemeinde.de | name=B;email=b@gemeinde.de"},
        role="landratsamt",
    )
    assert ok.clean["nutzer"] == [
        {"name": "A", "email": "a@gemeinde.de"},
        {"name": "B", "email": "b@gemeinde.de"},
    ]
    bad = check(
        viba,
        {"nutzer": [contact("A", "a@gemeinde.de"), {"name": "B"}]},
        role="landratsamt",
    )
    assert bad.errors["nutzer"] == "Eintrag 2: E-Mail fehlt."


def test_unknown_keys_and_fields_of_other_roles_are_errors(viba: CampaignDefinition) -> None:
    data = viba.model_dump(mode="json")
    data["questionnaire"].append(
        {"key": "nur_vvg", "label": "Nur VVG", "type": "text", "roles": ["vvg"]}
    )
    definition = CampaignDefinition.model_validate(data)
    result = check(definition, {"bogus": "x", "nur_vvg": "y"}, role="landratsamt")
    assert result.errors["bogus"].startswith("Unbekanntes Feld »bogus« (gültige Felder:")
    assert result.errors["nur_vvg"] == "Diese Frage gilt nicht für Ihre Gemeinde."
    assert check(definition, {"nur_vvg": "y"}, role="vvg").clean == {"nur_vvg": "y"}


def test_required_only_on_submit_and_complete_flag(ewa: CampaignDefinition) -> None:
    partial = {"funktionspostfach": "meldeamt@aalen.de"}
    draft = check(ewa, partial)
    assert draft.errors == {} and draft.complete is False
    submitted = check(ewa, partial, submit=True)
    assert submitted.errors["projektleitung"] == "Bitte füllen Sie dieses Pflichtfeld aus."
    assert "offene_punkte" not in submitted.errors  # optional
    full = check(ewa, complete_ewa_answers(), submit=True)
    assert full.errors == {} and full.complete is True
    assert check(ewa, complete_ewa_answers()).complete is True


def test_empty_values_count_as_unanswered(ewa: CampaignDefinition) -> None:
    result = check(ewa, {"offene_punkte": "  ", "projektleitung": {}, "wunsch_stichtag": None})
    assert result.clean == {} and result.errors == {}


def test_format_answer_in_german(ewa: CampaignDefinition) -> None:
    fields = {q.key: q for q in ewa.questionnaire}
    assert format_answer(fields["wunsch_stichtag"], "2025-07-15") == "15.07.2025"
    assert format_answer(fields["ewa_modul_bestellt"], True) == "ja"
    assert format_answer(fields["meldesoftware"], "ok_ewo") == "OK.EWO"
    assert (
        format_answer(
            fields["projektleitung"],
            {"salutation": "Frau", "name": "Anna Muster", "email": "a@b.de", "function": "HAL"},
        )
        == "Frau Anna Muster (HAL), a@b.de"
    )


# --- saving and versions ---------------------------------------------------------------------


def _save(session: Session, enrolment: Enrolment, answers: dict[str, Any], **kw: Any) -> Any:
    kw.setdefault("submit", False)
    kw.setdefault("source", "portal")
    kw.setdefault("author", "Anna Muster")
    kw.setdefault("now", NOW)
    return save_answers(session, enrolment=enrolment, answers=answers, **kw)


def test_versions_merge_and_answers_complete(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    first = _save(session, enrolment, {"funktionspostfach": "meldeamt@aalen.de"})
    assert (first.version, first.status, first.complete) == (1, "draft", False)
    assert enrolment.answers_complete is False
    assert enrolment.version == 1

    answers = complete_ewa_answers()
    del answers["funktionspostfach"]
    second = _save(session, enrolment, answers, submit=True)
    assert second.version == 2 and second.status == "submitted" and second.complete
    assert second.answers["funktionspostfach"] == "meldeamt@aalen.de"  # merged
    assert enrolment.answers_complete is True

    # a coordinator corrects one field as a draft: the submitted answers still count
    third = _save(session, enrolment, {"offene_punkte": "Schulungstermin?"}, source="cli")
    assert third.version == 3 and third.status == "draft"
    assert third.answers["projektleitung"]["name"] == "Anna Muster"
    assert enrolment.answers_complete is True

    # versions are never overwritten
    stored = session.exec(
        select(QuestionnaireResponse).where(QuestionnaireResponse.enrolment_id == enrolment.id)
    ).all()
    assert [r.version for r in stored] == [1, 2, 3]
    assert stored[0].answers == {"funktionspostfach": "meldeamt@aalen.de"}
    assert latest_response(session, enrolment.id).version == 3
    assert latest_response(session, enrolment.id, submitted_only=True).version == 2


def test_submitting_incomplete_answers_is_refused_and_writes_nothing(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    with pytest.raises(AnswersInvalid) as caught:
        _save(session, enrolment, {"funktionspostfach": "meldeamt@aalen.de"}, submit=True)
    assert caught.value.errors["projektleitung"] == "Bitte füllen Sie dieses Pflichtfeld aus."
    assert "Projektleitung (projektleitung)" in caught.value.render()
    assert session.exec(select(QuestionnaireResponse)).all() == []
    assert session.exec(select(Event)).all() == []
    assert enrolment.version == 0


def test_invalid_value_refuses_whole_save(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    with pytest.raises(AnswersInvalid) as caught:
        _save(session, enrolment, {"funktionspostfach": "ok@aalen.de", "wunsch_stichtag": "bald"})
    assert set(caught.value.errors) == {"wunsch_stichtag"}
    assert latest_response(session, enrolment.id) is None


def test_resubmission_with_cleared_required_field_resets_answers_complete(
    session: Session,
) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    _save(session, enrolment, complete_ewa_answers(), submit=True)
    assert enrolment.answers_complete is True
    # clearing a required field as a draft is allowed; the submitted version still counts
    draft = _save(session, enrolment, {"muellveranlagung": ""})
    assert "muellveranlagung" not in draft.answers
    assert enrolment.answers_complete is True
    with pytest.raises(AnswersInvalid):
        _save(session, enrolment, {}, submit=True)
    assert enrolment.answers_complete is True


def test_replace_instead_of_merge(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    _save(session, enrolment, complete_ewa_answers(), submit=True)
    replaced = _save(session, enrolment, {"offene_punkte": "neu"}, merge=False)
    assert replaced.answers == {"offene_punkte": "neu"}


def test_save_logs_event_with_source_and_author(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    _save(session, enrolment, {"offene_punkte": "x"}, source="cli", author="Erika")
    _save(session, enrolment, complete_ewa_answers(), submit=True, source="portal", author="Anna")
    events = [
        e for e in session.exec(select(Event).order_by(Event.id)) if e.kind.startswith("answers")
    ]
    assert [(e.kind, e.actor, e.data["source"], e.data["version"]) for e in events] == [
        ("answers_saved", "Erika", "cli", 1),
        ("answers_submitted", "Anna", "portal", 2),
    ]
    assert events[0].campaign_id == campaign.id and events[0].ags == AALEN


def test_unknown_source_is_a_programming_error(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    with pytest.raises(ValueError, match="unknown source"):
        _save(session, enrolment, {}, source="fax")


def test_expected_version_guards_against_lost_updates(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    _save(session, enrolment, {"offene_punkte": "a"}, expected_version=0)
    with pytest.raises(UserError, match="inzwischen"):
        _save(session, enrolment, {"offene_punkte": "b"}, expected_version=0)


# --- checklist -------------------------------------------------------------------------------


def _tick(session: Session, enrolment: Enrolment, key: str, done: bool = True, **kw: Any) -> Any:
    kw.setdefault("note", None)
    return set_checklist_item(
        session,
        enrolment=enrolment,
        item_key=key,
        done=done,
        source=kw.pop("source", "cli"),
        author=kw.pop("author", "Erika"),
        now=kw.pop("now", NOW),
        **kw,
    )


def test_checklist_done_and_undo_keep_required_open_right(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    required = [i.key for i in definition.items_for(None, False) if i.required]
    assert enrolment.required_open == len(required) == 11
    state = _tick(session, enrolment, "schulung", note="am 12.06. in Aalen")
    assert state.done and state.done_at == NOW and state.note == "am 12.06. in Aalen"
    assert (state.source, state.author) == ("cli", "Erika")
    assert enrolment.required_open == 10
    _tick(session, enrolment, "bekanntmachung")  # optional: no change
    assert enrolment.required_open == 10
    _tick(session, enrolment, "schulung", done=False)
    assert enrolment.required_open == 11
    state = session.exec(
        select(ChecklistItemState).where(ChecklistItemState.item_key == "schulung")
    ).one()
    assert state.done is False and state.done_at is None
    for key in required:
        _tick(session, enrolment, key)
    assert enrolment.required_open == 0
    kinds = [e.kind for e in session.exec(select(Event).order_by(Event.id)).all()]
    assert kinds[:3] == ["checklist_item_done", "checklist_item_done", "checklist_item_reopened"]
    first = session.exec(select(Event).order_by(Event.id)).first()
    assert first.data == {"item": "schulung", "note": "am 12.06. in Aalen", "source": "cli"}


def test_checklist_same_state_twice_changes_nothing(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    _tick(session, enrolment, "schulung")
    version = enrolment.version
    _tick(session, enrolment, "schulung")
    assert enrolment.version == version
    assert len(session.exec(select(Event)).all()) == 1


def test_checklist_unknown_or_not_applicable_item(session: Session) -> None:
    campaign, definition = make_campaign(session, "viba-bw")
    enrolment = enrol(session, campaign, definition, AALEN, role="landratsamt")
    with pytest.raises(UserError) as caught:
        _tick(session, enrolment, "schulungg")
    assert "gibt es in dieser Kampagne nicht" in caught.value.message
    assert "schulung_besucht" in caught.value.details[0]
    with pytest.raises(UserError, match="gilt nicht für diese Gemeinde"):
        _tick(session, enrolment, "teststellungnahme")  # pilots only
    pilot = enrol(session, campaign, definition, ESSINGEN, role="landratsamt", is_pilot=True)
    _tick(session, pilot, "teststellungnahme")
    assert enrolment.required_open == 8
    assert pilot.required_open == 8  # 9 for a pilot, one done


def test_checklist_row_missing_is_created(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    session.delete(
        session.exec(
            select(ChecklistItemState).where(ChecklistItemState.item_key == "vortest")
        ).one()
    )
    session.flush()
    _tick(session, enrolment, "vortest")
    assert enrolment.required_open == 10


def test_checklist_view_due_dates_and_overdue(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    _tick(session, enrolment, "interesse_bekundet", note="per Mail")
    today = campaign.go_live - timedelta(weeks=10)
    view = {row["key"]: row for row in checklist_view(session, enrolment, definition, today=today)}
    assert view["interesse_bekundet"]["due"] == campaign.go_live - timedelta(weeks=12)
    assert view["interesse_bekundet"]["done"] and not view["interesse_bekundet"]["overdue"]
    assert view["interesse_bekundet"]["note"] == "per Mail"
    assert view["rollen_benannt"]["overdue"] is False  # due today
    assert view["aktivierung_bestaetigt"]["owner"] == "Komm.ONE"
    later = checklist_view(session, enrolment, definition, today=today + timedelta(days=1))
    assert {r["key"] for r in later if r["overdue"]} == {"rollen_benannt", "modul_bestellt"}
    # an own go-live date moves the due dates
    enrolment.go_live = campaign.go_live + timedelta(weeks=4)
    moved = checklist_view(session, enrolment, definition, today=today)
    assert moved[0]["due"] == campaign.go_live - timedelta(weeks=8)


# --- finding an enrolment --------------------------------------------------------------------


def test_find_enrolment(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    assert find_enrolment(session, campaign.id, AALEN).id == enrolment.id
    assert find_enrolment(session, campaign.id, "8136088").id == enrolment.id  # Excel-style
    with pytest.raises(UserError, match=r"Die Gemeinde Essingen \(08136019\) nimmt an der"):
        find_enrolment(session, campaign.id, ESSINGEN)
    with pytest.raises(UserError, match="Die Kampagne »nope« gibt es nicht"):
        find_enrolment(session, "nope", AALEN)
    with pytest.raises(UserError, match="kein gültiger Gemeindeschlüssel"):
        find_enrolment(session, campaign.id, "Aalen")
