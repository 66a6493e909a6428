"""The reminder policy as plain functions: schedule, one mail a day, stop, escalate, late-send."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from efa_rollout.definitions import CampaignDefinition, ReminderPlan
from efa_rollout.domain.reminder_plan import (
    QUESTIONNAIRE_KEY,
    OpenItem,
    SlotKind,
    effective_deadline,
    iter_slots,
    open_items,
    slots_until,
)
from efa_rollout.domain.reminders import Action, ReminderDecision, SentMail, decide_reminder
from efa_rollout.domain.workdays import WorkCalendar

BERLIN = ZoneInfo("Europe/Berlin")
CAL = WorkCalendar()
PLAN = ReminderPlan()  # 3 days before, on the deadline, every 5, escalate after 3, max 8
ITEM = OpenItem("schulung", "Schulung durchgeführt", date(2025, 3, 14))  # a Friday


def at(day: date, hour: int = 9, minute: int = 0) -> datetime:
    """DAY at HOUR local time, as aware UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def decide(
    day: date,
    items: list[OpenItem] | None = None,
    history: list[SentMail] | None = None,
    plan: ReminderPlan = PLAN,
    **kwargs: Any,
) -> ReminderDecision:
    return decide_reminder(
        now=kwargs.pop("now", at(day)),
        items=[ITEM] if items is None else items,
        history=history or [],
        plan=plan,
        calendar=CAL,
        stage=kwargs.pop("stage", "checklist_follow_up"),
        **kwargs,
    )


def record(history: list[SentMail], decision: ReminderDecision, day: date) -> None:
    """What the task does after queueing: the mail becomes history."""
    assert decision.mail_kind is not None and decision.sequence is not None
    history.append(SentMail(decision.mail_kind, decision.sequence, day))


def simulate(
    start: date,
    end: date,
    items_on: Any,
    plan: ReminderPlan = PLAN,
    hours: tuple[int, ...] = (9,),
) -> list[tuple[date, str, int, str | None]]:
    """Run the policy on every day (and hour) from START to END; returns the mails sent."""
    history: list[SentMail] = []
    sent: list[tuple[date, str, int, str | None]] = []
    day = start
    while day <= end:
        for hour in hours:
            decision = decide(day, items_on(day, hour), history, plan, now=at(day, hour))
            if decision.sends:
                record(history, decision, day)
                sent.append((day, decision.action.value, decision.sequence, decision.reminder_kind))  # type: ignore[arg-type]
        day += timedelta(days=1)
    return sent


# --- the schedule ----------------------------------------------------------------------------


def test_slots_before_on_and_every_five_working_days() -> None:
    slots = iter_slots(ITEM.due, PLAN, CAL)
    first = [next(slots) for _ in range(7)]
    assert [(s.day, s.kind) for s in first] == [
        (date(2025, 3, 11), SlotKind.BEFORE),
        (date(2025, 3, 14), SlotKind.DEADLINE),
        (date(2025, 3, 21), SlotKind.REPEAT),
        (date(2025, 3, 28), SlotKind.REPEAT),
        (date(2025, 4, 4), SlotKind.REPEAT),
        (date(2025, 4, 11), SlotKind.REPEAT),
        (date(2025, 4, 22), SlotKind.REPEAT),  # Karfreitag and Ostermontag skipped
    ]


def test_deadline_on_fronleichnam_is_reminded_the_working_day_before() -> None:
    due = date(2025, 6, 19)
    assert effective_deadline(due, CAL) == date(2025, 6, 18)
    past, upcoming = slots_until(due, PLAN, CAL, date(2025, 6, 18))
    assert [(s.day, s.kind) for s in past] == [
        (date(2025, 6, 13), SlotKind.BEFORE),
        (date(2025, 6, 18), SlotKind.DEADLINE),
    ]
    assert upcoming.day == date(2025, 6, 26)  # five working days, Fronleichnam skipped
    item = OpenItem("x", "X", due)
    on_eve = decide(date(2025, 6, 18), [item], [SentMail("reminder", 1, date(2025, 6, 13))])
    assert on_eve.action == Action.REMIND and on_eve.reminder_kind == "deadline"
    assert on_eve.deadline == due
    assert on_eve.reason.startswith("Erinnerung am Fristtag zur Frist Donnerstag, 19.06.2025")
    assert decide(date(2025, 6, 19), [item]).action == Action.WAIT  # the holiday itself


def test_deadline_on_allerheiligen_and_on_a_closing_day() -> None:
    assert effective_deadline(date(2024, 11, 1), CAL) == date(2024, 10, 31)
    assert effective_deadline(date(2025, 12, 24), CAL) == date(2025, 12, 23)
    assert effective_deadline(date(2025, 12, 28), CAL) == date(2025, 12, 23)


def test_plan_without_before_and_deadline_starts_with_repeats() -> None:
    plan = ReminderPlan(before_working_days=0, on_deadline=False, every_working_days=2)
    past, upcoming = slots_until(ITEM.due, plan, CAL, date(2025, 3, 18))
    assert [(s.day, s.kind) for s in past] == [(date(2025, 3, 18), SlotKind.REPEAT)]
    assert upcoming.day == date(2025, 3, 20)


# --- a simulated month -----------------------------------------------------------------------


def test_simulated_sequence_before_deadline_repeat_escalation_and_max() -> None:
    sent = simulate(date(2025, 3, 1), date(2025, 5, 31), lambda day, hour: [ITEM])
    assert sent == [
        (date(2025, 3, 11), "remind", 1, "before"),
        (date(2025, 3, 14), "remind", 2, "deadline"),
        (date(2025, 3, 21), "remind", 3, "repeat"),
        (date(2025, 3, 28), "remind", 4, "repeat"),
        # three reminders on or after the deadline: the next reminder day escalates
        (date(2025, 4, 4), "escalate", 1, "repeat"),
        (date(2025, 4, 11), "remind", 5, "repeat"),
        (date(2025, 4, 22), "remind", 6, "repeat"),
        (date(2025, 4, 29), "remind", 7, "repeat"),
        (date(2025, 5, 7), "remind", 8, "repeat"),  # 1 May is a holiday
        # max_reminders = 8: nothing more, and only one escalation
    ]


def test_max_reminders_stops_reminding() -> None:
    plan = ReminderPlan(max_reminders=3, escalate_after=5)
    sent = simulate(date(2025, 3, 1), date(2025, 5, 31), lambda day, hour: [ITEM], plan)
    assert [s[0] for s in sent] == [date(2025, 3, 11), date(2025, 3, 14), date(2025, 3, 21)]
    history = [SentMail("reminder", i + 1, s[0]) for i, s in enumerate(sent)]
    after = decide(date(2025, 3, 28), history=history, plan=plan)
    assert after.action == Action.NOTHING and "Höchstzahl von 3" in after.reason


def test_escalation_goes_to_the_escalation_roles_with_the_coordinator_in_copy() -> None:
    history = [
        SentMail("reminder", 1, date(2025, 3, 11)),
        SentMail("reminder", 2, date(2025, 3, 14)),
        SentMail("reminder", 3, date(2025, 3, 21)),
        SentMail("reminder", 4, date(2025, 3, 28)),
    ]
    decision = decide(date(2025, 4, 4), history=history)
    assert decision.action == Action.ESCALATE
    assert decision.mail_kind == "escalation" and decision.sequence == 1
    assert decision.recipient_roles == ("Bürgermeister", "Hauptamt")
    assert decision.cc_coordinator is True
    assert "Eskalation an Bürgermeister, Hauptamt" in decision.reason
    extra = decision.mail_extra(date(2025, 4, 4))
    assert extra["reminders_sent"] == 4 and extra["deadline"] == date(2025, 4, 11)
    reminder = decide(date(2025, 3, 28), history=history[:3])
    assert reminder.action == Action.REMIND
    assert reminder.cc_coordinator is False and reminder.recipient_roles is None


def test_stop_on_done() -> None:
    done_on = date(2025, 3, 17)
    sent = simulate(
        date(2025, 3, 1), date(2025, 4, 30), lambda day, hour: [] if day >= done_on else [ITEM]
    )
    assert [s[0] for s in sent] == [date(2025, 3, 11), date(2025, 3, 14)]
    nothing = decide(date(2025, 3, 21), items=[])
    assert nothing.action == Action.NOTHING and "Keine offenen Punkte" in nothing.reason


@pytest.mark.parametrize(
    ("status", "stage", "expected"),
    [
        ("paused", "checklist_follow_up", "pausiert"),
        ("not_applicable", "checklist_follow_up", "nicht zutreffend"),
        ("active", "summary_distribution", "Zusammenfassung verteilen"),
        ("active", "completed", "Abgeschlossen"),
    ],
)
def test_paused_excluded_and_wrong_stage_get_nothing(
    status: str, stage: str, expected: str
) -> None:
    decision = decide(date(2025, 3, 14), status=status, stage=stage)
    assert decision.action == Action.NOTHING
    assert expected in decision.reason


# --- one mail a day, all open items ----------------------------------------------------------


def test_one_mail_a_day_lists_every_deadline_whose_step_is_today() -> None:
    later = OpenItem("support", "First-Level-Support eingerichtet", date(2025, 3, 19))
    items = [later, ITEM]
    # 11.03.: the friendly step of 'schulung' (14.03.) only; 'support' is not due yet
    first = decide(date(2025, 3, 11), items)
    assert first.action == Action.REMIND
    assert [i.key for i in first.items] == ["schulung"]
    # 14.03.: the deadline of 'schulung' and the friendly step of 'support': one mail, two groups
    history = [SentMail("reminder", 1, date(2025, 3, 11), (("schulung", ITEM.due),))]
    both = decide(date(2025, 3, 14), items, history)
    assert both.action == Action.REMIND and both.sequence == 2
    assert [i.key for i in both.items] == ["schulung", "support"]  # earliest deadline first
    extra = both.mail_extra(date(2025, 3, 14))
    assert extra["deadline"] == date(2025, 3, 14)
    assert extra["reminder_kind"] == "deadline"
    assert [
        (g["due"], g["reply_by"], [i["key"] for i in g["items"]]) for g in extra["deadline_groups"]
    ] == [
        (date(2025, 3, 14), date(2025, 3, 14), ["schulung"]),
        (date(2025, 3, 19), date(2025, 3, 19), ["support"]),
    ]
    assert extra["open_items"][0] == {
        "key": "schulung",
        "title": "Schulung durchgeführt",
        "due": date(2025, 3, 14),
        "overdue": False,
    }
    assert both.covered == (("schulung", ITEM.due), ("support", later.due))
    # 21.03.: the first repeat of 'schulung' (past: reply by the next step), 'support' overdue
    history.append(SentMail("reminder", 2, date(2025, 3, 14), both.covered))
    history.append(SentMail("reminder", 3, date(2025, 3, 19), (("support", later.due),)))
    overdue = decide(date(2025, 3, 21), items, history)
    extra = overdue.mail_extra(date(2025, 3, 21))
    assert [i["key"] for i in extra["open_items"]] == ["schulung"]
    assert extra["open_items"][0]["overdue"] is True
    # past the deadline the mail asks for a reply by the next reminder day, never a past date
    assert overdue.deadline == date(2025, 3, 14)
    assert extra["deadline"] == date(2025, 3, 28)
    assert extra["reminder_kind"] == "repeat"


def test_one_mail_a_day_when_the_earliest_item_is_done_after_todays_mail() -> None:
    # 14.03. is the deadline of 'schulung' and the friendly reminder day of 'support' (19.03.).
    later = OpenItem("support", "First-Level-Support eingerichtet", date(2025, 3, 19))

    def items_on(day: date, hour: int) -> list[OpenItem]:
        done = day > date(2025, 3, 14) or (day == date(2025, 3, 14) and hour >= 11)
        return [later] if done else [ITEM, later]

    sent = simulate(date(2025, 3, 10), date(2025, 3, 31), items_on, hours=(9, 11, 14))
    days = [s[0] for s in sent]
    assert len(days) == len(set(days)), "more than one mail on one day"
    assert days[:3] == [date(2025, 3, 11), date(2025, 3, 14), date(2025, 3, 19)]
    assert sent[2][3] == "deadline"


def test_already_mailed_today_means_nothing_more_today() -> None:
    history = [SentMail("escalation", 1, date(2025, 3, 14))]
    decision = decide(date(2025, 3, 14), history=history, now=at(date(2025, 3, 14), 15))
    assert decision.action == Action.NOTHING
    assert "bereits" in decision.reason


def test_sequence_continues_from_the_highest_sent() -> None:
    history = [
        SentMail("reminder", 7, date(2025, 2, 1)),
        SentMail("escalation", 2, date(2025, 2, 8)),
    ]
    decision = decide(date(2025, 3, 11), history=history)
    assert decision.action == Action.REMIND and decision.sequence == 8


# --- sending window and late-send guard -----------------------------------------------------


def test_outside_the_window_or_on_a_weekend_the_decision_is_to_wait() -> None:
    early = decide(date(2025, 3, 14), now=at(date(2025, 3, 14), 7, 30))
    assert early.action == Action.WAIT
    assert early.send_at == at(date(2025, 3, 14), 8)
    late = decide(date(2025, 3, 14), now=at(date(2025, 3, 14), 16, 0))
    assert late.action == Action.WAIT and late.send_at == at(date(2025, 3, 17), 8)
    weekend = decide(date(2025, 3, 15))
    assert weekend.action == Action.WAIT
    assert "Samstag" in weekend.reason and "Montag, 17.03.2025, 08:00 Uhr" in weekend.reason
    assert not weekend.sends and weekend.mail_kind is None


def test_a_reminder_carries_not_after_the_end_of_its_days_window() -> None:
    decision = decide(date(2025, 3, 14))
    assert decision.not_after == datetime(2025, 3, 14, 15, 0, tzinfo=UTC)  # 16:00 CET
    summer = decide(date(2025, 6, 18), [OpenItem("x", "X", date(2025, 6, 19))])
    assert summer.not_after == datetime(2025, 6, 18, 14, 0, tzinfo=UTC)  # 16:00 CEST


def test_missed_reminder_days_are_dropped_not_sent_in_a_pile() -> None:
    history = [SentMail("reminder", 1, date(2025, 3, 11))]
    # The flow did not run from 12.03. to 24.03.: the deadline and first repeat passed.
    decision = decide(date(2025, 3, 25), history=history)
    assert decision.action == Action.NOTHING
    assert [(d.day, d.kind) for d in decision.dropped] == [
        (date(2025, 3, 14), SlotKind.DEADLINE),
        (date(2025, 3, 21), SlotKind.REPEAT),
    ]
    assert "nicht nachgeholt" in decision.reason and "28.03.2025" in decision.reason
    assert "verstrichen" in decision.dropped[0].reason


def test_after_an_outage_only_the_current_reminder_is_sent() -> None:
    history = [SentMail("reminder", 1, date(2025, 3, 11))]
    decision = decide(date(2025, 3, 28), history=history)
    assert decision.action == Action.REMIND
    assert decision.sequence == 2 and decision.reminder_kind == "repeat"
    assert [d.day for d in decision.dropped] == [date(2025, 3, 14), date(2025, 3, 21)]


def test_days_before_the_stage_began_are_not_reported_as_dropped() -> None:
    decision = decide(date(2025, 3, 25), active_since=date(2025, 3, 24))
    assert decision.action == Action.NOTHING and decision.dropped == ()
    decision = decide(date(2025, 3, 25), active_since=date(2025, 3, 20))
    assert [d.day for d in decision.dropped] == [date(2025, 3, 21)]


def test_nothing_before_the_first_reminder_day() -> None:
    decision = decide(date(2025, 3, 10))
    assert decision.action == Action.NOTHING
    assert decision.next_day == date(2025, 3, 11)
    assert "11.03.2025" in decision.reason


# --- open items ------------------------------------------------------------------------------

DEFINITION = CampaignDefinition.model_validate(
    {
        "key": "test",
        "title": "Test",
        "service": "Test",
        "service_key": "test",
        "stages": [
            "information_collection",
            "summary_distribution",
            "checklist_follow_up",
            "go_live",
        ],
        "questionnaire": [{"key": "kontakt", "label": "Kontakt", "type": "text"}],
        "checklist": [
            {"key": "rollen", "title": "Rollen benannt", "due": "-10w"},
            {"key": "konten", "title": "Konten eingerichtet", "owner": "Landratsamt", "due": "-6w"},
            {"key": "schulung", "title": "Schulung", "due": "-3w"},
            {"key": "test", "title": "Teststellungnahme", "due": "-4w", "pilots_only": True},
            {"key": "bauamt", "title": "Bauamt", "due": "-2w", "roles": ["eigene_brb"]},
            {"key": "hinweis", "title": "Hinweis", "due": "0d", "required": False},
        ],
    }
)
GO_LIVE = date(2025, 8, 1)


def items_of(**kwargs: Any) -> list[OpenItem]:
    args: dict[str, Any] = {
        "stage": "checklist_follow_up",
        "role": None,
        "is_pilot": False,
        "go_live": GO_LIVE,
        "collection_deadline": date(2025, 5, 9),
        "answers_complete": False,
        "done_keys": [],
    }
    return open_items(DEFINITION, **{**args, **kwargs})


def test_open_checklist_items_with_absolute_due_dates() -> None:
    items = items_of()
    assert [(i.key, i.due) for i in items] == [
        ("rollen", date(2025, 5, 23)),
        ("schulung", date(2025, 7, 11)),
        ("hinweis", date(2025, 8, 1)),  # optional items are reminded too
    ]
    # 'konten' belongs to the Landratsamt: never reminded to the municipality
    assert "konten" not in [i.key for i in items]


def test_open_items_follow_role_pilot_flag_and_done_state() -> None:
    done = ["rollen", "hinweis"]
    keys = [i.key for i in items_of(role="eigene_brb", is_pilot=True, done_keys=done)]
    assert keys == ["test", "schulung", "bauamt"]
    assert items_of(done_keys=["rollen", "schulung", "hinweis"]) == []


def test_questionnaire_is_the_open_item_in_information_collection() -> None:
    items = items_of(stage="information_collection")
    assert [(i.key, i.due) for i in items] == [(QUESTIONNAIRE_KEY, date(2025, 5, 9))]
    assert items_of(stage="information_collection", answers_complete=True) == []
    assert items_of(stage="information_collection", collection_closed=True) == []
    assert items_of(stage="summary_distribution") == []
    assert [i.key for i in items_of(stage="after_care")] == ["rollen", "schulung", "hinweis"]
