"""Text true on its date: every mail kind, rendered before and after each key date."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest

from efa_rollout.definitions import get_definition
from efa_rollout.domain import phrasing
from efa_rollout.mail.context import build_context
from efa_rollout.mail.render import MAIL_KINDS, render_mail
from efa_rollout.settings import get_settings
from models import Campaign, Enrolment, Municipality

GO_LIVE = date(2024, 10, 1)
LONG_DATE = re.compile(
    r"(?:Montag|Dienstag|Mittwoch|Donnerstag|Freitag|Samstag|Sonntag), (\d\d)\.(\d\d)\.(\d{4})"
)
#: Words before a date that announce it as still to come.
FUTURE_BEFORE = re.compile(
    r"(geplant für|ist für|startet am|bis spätestens|(?<!war )fällig am|Ab|"
    r"ab:|Schulung:|Start:|Rückmeldefrist:|Go-Live \(nur Testbeteiligte\):)\s*$"
)
#: Words after a past date that must be there (the line names it as done / passed).
PAST_AFTER = {
    "Schulung:": " (hat bereits stattgefunden)",
    "Start:": " (seitdem in Betrieb)",
    "Rückmeldefrist:": " (abgelaufen)",
}
#: Words before a date that call it past.
PAST_BEFORE = re.compile(r"(seit|war fällig am|ist am)\s*$")


def _campaign() -> tuple[Campaign, Enrolment, Municipality]:
    definition = get_definition("viba-bw")
    campaign = Campaign(
        id="viba-ostalbkreis",
        template="viba-bw",
        title="ViBa BW im Ostalbkreis",
        service="ViBa BW",
        area_code="08136",
        go_live=GO_LIVE,
        dates=definition.resolve_dates(GO_LIVE),
        definition=definition.model_dump(mode="json"),
    )
    municipality = Municipality(
        ags="08136019", name="Essingen", type_code="64", district_code="08136", state_code="08"
    )
    enrolment = Enrolment(
        campaign_id=campaign.id,
        ags=municipality.ags,
        stage="checklist_follow_up",
        stage_entered_at=datetime(2024, 1, 1, tzinfo=UTC),
        role="landratsamt",
    )
    return campaign, enrolment, municipality


def _key_days(campaign: Campaign) -> list[date]:
    days = [campaign.go_live]
    for value in campaign.dates.values():
        values = value if isinstance(value, list) else [value]
        days += [date.fromisoformat(v) for v in values if v]
    return sorted(set(days))


def _moments(campaign: Campaign) -> list[date]:
    """The day before, the day of and the day after each key date."""
    return sorted({d + timedelta(days=n) for d in _key_days(campaign) for n in (-1, 0, 1)})


def _render(kind: str, today: date, **extra: object) -> str:
    campaign, enrolment, municipality = _campaign()
    now = datetime.combine(today, time(9), tzinfo=get_settings().zone)
    defaults: dict[str, object] = {
        "submission_confirmation": {"submitted_at": now, "version": 1, "complete": False},
        "weekly_report": {"week": "1/2024", "as_of": today, "rows": []},
        "escalation": {"reminders_sent": 3},
    }.get(kind, {})
    context = build_context(
        None,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        contacts=[],
        kind=kind,
        sequence=1,
        now=now,
        settings=get_settings(),
        portal_link="https://portal.example/p/abc",
        extra={**defaults, **extra},
    )
    mail = render_mail(kind, context)
    return mail.subject + "\n" + mail.text + "\n" + re.sub(r"<[^>]+>", "", mail.html)


def assert_true_on(text: str, today: date) -> None:
    """No past date is announced as coming, and no coming date as past."""
    flat = " ".join(text.split())
    for match in LONG_DATE.finditer(flat):
        day = date(int(match[3]), int(match[2]), int(match[1]))
        before = flat[max(0, match.start() - 60) : match.start()]
        after = flat[match.end() : match.end() + 40]
        where = f"»…{before}{match[0]}{after}…« am {today:%d.%m.%Y}"
        if day < today:
            announced = FUTURE_BEFORE.search(before)
            if announced and announced[1] in PAST_AFTER:
                assert after.startswith(PAST_AFTER[announced[1]]), where
            else:
                assert announced is None, where
        elif day > today:
            assert PAST_BEFORE.search(before) is None, where
            assert not after.startswith((" (abgelaufen)", " (hat bereits", " (seitdem")), where


@pytest.mark.parametrize("kind", [k for k in MAIL_KINDS if k != "weekly_report"])
def test_every_kind_reads_true_around_every_key_date(efa_env, kind: str) -> None:
    campaign, _, _ = _campaign()
    checked = 0
    for today in _moments(campaign):
        text = _render(kind, today)
        assert_true_on(text, today)
        checked += len(LONG_DATE.findall(text))
    assert checked > 20  # dates were really there to check


def test_reminder_after_go_live_says_in_operation(efa_env) -> None:
    text = _render("reminder", date(2025, 1, 2))
    assert "Der Start ist für Dienstag, 01.10.2024 geplant" not in text
    assert "ViBa BW ist seit Dienstag, 01.10.2024 in Betrieb." in text


def test_the_checker_catches_the_old_wording() -> None:
    with pytest.raises(AssertionError):
        assert_true_on("Der Start ist für Dienstag, 01.10.2024 geplant.", date(2025, 1, 2))
    with pytest.raises(AssertionError):
        assert_true_on("bis spätestens Mittwoch, 31.05.2023", date(2023, 6, 2))


def test_reminder_before_go_live_announces_start(efa_env) -> None:
    text = _render("reminder", date(2024, 9, 2))
    assert "Der Start ist für Dienstag, 01.10.2024 geplant." in text


def test_information_request_after_deadline_asks_for_a_future_date(efa_env) -> None:
    campaign, _, _ = _campaign()
    deadline = date.fromisoformat(campaign.dates["collection_deadline"])
    today = deadline + timedelta(days=2)
    text = _render("information_request", today)
    asked = re.search(r"bis spätestens (\w+, [\d.]+)", text)
    assert asked is not None
    assert date(*reversed([int(p) for p in asked[1].split(", ")[1].split(".")])) > today
    assert f"Rückmeldefrist: {phrasing.long_date(deadline)} (abgelaufen)" in text


def test_summary_thanks_only_those_who_answered(efa_env) -> None:
    today = date(2023, 11, 1)
    assert "Vielen Dank für Ihre Mitwirkung" in _render("summary", today, answered=True)
    unanswered = _render("summary", today)
    assert "Mitwirkung" not in unanswered
    assert "liegt uns noch keine Rückmeldung vor" in unanswered


def test_summary_lists_only_own_items_current_first(efa_env) -> None:
    text = _render("summary", date(2024, 8, 27)).split("Bitte markieren")[0]
    assert "Ansprechpersonen und Funktionspostfach gemeldet" in text
    assert "Benutzerkonten eingerichtet" not in text  # the Landratsamt's own item
    overdue = text.index("Ansprechpersonen und Funktionspostfach gemeldet – war fällig am")
    assert overdue < text.index("Schulung besucht – fällig am")


def test_phrasing_rules() -> None:
    today = date(2025, 1, 2)
    assert phrasing.tense(date(2025, 1, 1), today) == "past"
    assert phrasing.tense(today, today) == "today"
    assert phrasing.start_sentence("eWA", date(2025, 1, 3), today).endswith("geplant.")
    assert phrasing.due_phrase(date(2024, 12, 20), today).startswith("war fällig am")
    assert phrasing.answer_deadline(date(2024, 12, 1), today, date(2025, 1, 9)) == date(2025, 1, 9)
    lines = phrasing.timeline(
        [("go_live", date(2024, 10, 1)), ("training", date(2025, 2, 3))], today
    )
    assert [e.key for e in lines["upcoming"]] == ["training"]
    assert lines["past"][0].text == "Start: Dienstag, 01.10.2024 (seitdem in Betrieb)"
