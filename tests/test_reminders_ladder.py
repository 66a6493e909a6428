"""The ladder per deadline: own steps per due date, cap per deadline, escalation, make-up."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from efa_rollout.definitions import ReminderPlan
from efa_rollout.domain.reminder_plan import OpenItem, group_by_deadline
from efa_rollout.domain.reminders import Action, ReminderDecision, SentMail, decide_reminder
from efa_rollout.domain.workdays import WorkCalendar, iter_working_days

BERLIN = ZoneInfo("Europe/Berlin")
CAL = WorkCalendar()
PLAN = ReminderPlan()  # 3 days before, on the deadline, every 5, escalate after 3, max 8
EARLY = OpenItem("rollen", "Rollen benannt", date(2025, 3, 14))  # Friday
LATE = OpenItem("schulung", "Schulung durchgeführt", date(2025, 6, 6))  # Friday, 12 weeks later


def at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN).astimezone(UTC)


def decide(
    day: date, items: list[OpenItem], history: list[SentMail], plan: ReminderPlan = PLAN
) -> ReminderDecision:
    return decide_reminder(
        now=at(day),
        items=items,
        history=history,
        plan=plan,
        calendar=CAL,
        stage="checklist_follow_up",
    )


def run(
    days: list[date], items_on: object, history: list[SentMail] | None = None
) -> list[tuple[date, ReminderDecision]]:
    """Decide on each of DAYS, recording every mail as history (what the service does)."""
    history = [] if history is None else history
    sent = []
    for day in days:
        items = items_on(day) if callable(items_on) else list(items_on)  # type: ignore[arg-type]
        decision = decide(day, items, history)
        if decision.sends:
            assert decision.mail_kind and decision.sequence
            history.append(SentMail(decision.mail_kind, decision.sequence, day, decision.covered))
            sent.append((day, decision))
    return sent


def every_day(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def asked(sent: list[tuple[date, ReminderDecision]], due: date) -> list[date]:
    """The days a mail asked for deadline DUE."""
    return [day for day, d in sent if any(step.due == due for step in d.steps)]


def test_items_are_grouped_by_deadline() -> None:
    other = OpenItem("modul", "Modul bestellt", EARLY.due)
    assert group_by_deadline([LATE, other, EARLY]) == [
        (EARLY.due, (other, EARLY)),
        (LATE.due, (LATE,)),
    ]


def test_each_deadline_has_its_own_steps_and_its_own_cap() -> None:
    sent = run(every_day(date(2025, 3, 1), date(2025, 8, 29)), [EARLY, LATE])
    days = [day for day, _ in sent]
    assert len(days) == len(set(days)), "more than one mail on one day"
    early = asked(sent, EARLY.due)
    late = asked(sent, LATE.due)
    # the early deadline: friendly step, the deadline, repeats; capped at 8 reminders (+1 escalation)
    assert early[:2] == [date(2025, 3, 11), date(2025, 3, 14)]
    early_reminders = [
        d
        for d, x in sent
        if x.action == Action.REMIND and EARLY.due in x.made_up + tuple(s.due for s in x.steps)
    ]
    assert len(early_reminders) == 8
    # the late deadline still gets its whole ladder although the early one is exhausted
    assert late[:3] == [date(2025, 6, 3), date(2025, 6, 6), date(2025, 6, 16)]  # Pfingstmontag
    late_reminders = [
        d for d, x in sent if x.action == Action.REMIND and any(s.due == LATE.due for s in x.steps)
    ]
    assert len(late_reminders) == 8
    escalations = [(d, [s.due for s in x.steps]) for d, x in sent if x.action == Action.ESCALATE]
    assert [due for _, due in escalations] == [[EARLY.due], [LATE.due]]  # once per deadline


def test_an_escalation_asks_only_for_what_is_due_and_the_friendly_step_follows() -> None:
    soon = OpenItem("support", "Support eingerichtet", date(2025, 4, 9))  # friendly step 04.04.
    history = [
        SentMail("reminder", 1, date(2025, 3, 11), (("rollen", EARLY.due),)),
        SentMail("reminder", 2, date(2025, 3, 14), (("rollen", EARLY.due),)),
        SentMail("reminder", 3, date(2025, 3, 21), (("rollen", EARLY.due),)),
        SentMail("reminder", 4, date(2025, 3, 28), (("rollen", EARLY.due),)),
    ]
    escalation = decide(date(2025, 4, 4), [EARLY, soon], history)
    assert escalation.action == Action.ESCALATE
    assert [i.key for i in escalation.items] == ["rollen"]  # not 'support', due later
    assert escalation.deferred == (soon.due,)
    assert escalation.recipient_roles == ("Bürgermeister", "Hauptamt")
    assert escalation.mail_extra(date(2025, 4, 4))["deadline"] == date(2025, 4, 11)
    history.append(SentMail("escalation", 1, date(2025, 4, 4), escalation.covered))
    # the friendly step of 'support' is made up on the next working day, to the usual contacts
    follow = decide(date(2025, 4, 7), [EARLY, soon], history)
    assert follow.action == Action.REMIND and follow.recipient_roles is None
    assert [i.key for i in follow.items] == ["support"] and follow.made_up == (soon.due,)
    assert follow.reminder_kind == "before"


def test_a_missed_step_is_made_up_once_while_its_deadline_is_ahead() -> None:
    # the system was down on 11.03. (the friendly step of 14.03.)
    made_up = decide(date(2025, 3, 12), [EARLY], [])
    assert made_up.action == Action.REMIND and made_up.made_up == (EARLY.due,)
    assert made_up.reminder_kind == "before" and "nachgeholt" in made_up.reason
    assert made_up.dropped == ()
    history = [SentMail("reminder", 1, date(2025, 3, 12), made_up.covered)]
    assert decide(date(2025, 3, 13), [EARLY], history).action == Action.NOTHING  # only once
    on_deadline = decide(date(2025, 3, 14), [EARLY], history)
    assert on_deadline.action == Action.REMIND and on_deadline.reminder_kind == "deadline"


def test_a_missed_step_after_its_deadline_is_dropped() -> None:
    # down from 13.03. to 17.03.: the deadline step of 14.03. is not made up (deadline passed)
    history = [SentMail("reminder", 1, date(2025, 3, 11), (("rollen", EARLY.due),))]
    late = decide(date(2025, 3, 17), [EARLY], history)
    assert late.action == Action.NOTHING
    assert [d.day for d in late.dropped] == [date(2025, 3, 14)]
    assert "21.03.2025" in late.reason


def test_a_mail_of_another_kind_today_defers_the_step_to_the_next_working_day() -> None:
    history = [SentMail("summary", 1, date(2025, 3, 11))]
    assert decide(date(2025, 3, 11), [EARLY], history).action == Action.NOTHING
    follow = decide(date(2025, 3, 12), [EARLY], history)
    assert follow.action == Action.REMIND and follow.made_up == (EARLY.due,)


def test_older_mails_without_recorded_items_count_for_deadlines_already_begun() -> None:
    history = [SentMail("reminder", n, date(2025, 3, 10) + timedelta(days=n)) for n in range(1, 9)]
    history.append(SentMail("escalation", 1, date(2025, 3, 19)))
    # eight reminders and an escalation in March: the March deadline is done with, June is not
    assert decide(date(2025, 3, 21), [EARLY], history).action == Action.NOTHING
    june = decide(date(2025, 6, 3), [EARLY, LATE], history)
    assert june.action == Action.REMIND and [i.key for i in june.items] == ["schulung"]


def test_every_deadline_up_to_go_live_gets_its_steps_through_a_stale_demo_timeline() -> None:
    """Runs only on Mondays (a coarse timeline): friendly steps are still made up."""
    go_live = date(2025, 9, 1)
    items = [
        OpenItem(f"p{n}", f"Punkt {n}", go_live - timedelta(weeks=w))
        for n, w in enumerate([10, 6, 4, 3, 2, 1, 0])
    ]
    mondays = [d for d in iter_working_days(CAL, date(2025, 6, 1), go_live) if d.weekday() == 0]
    sent = run(mondays, items)
    for item in items:
        days = asked(sent, item.due)
        assert days, f"no reminder for the deadline {item.due}"
        assert days[0] <= item.due


def test_iter_working_days_skips_weekends_and_holidays() -> None:
    days = list(iter_working_days(CAL, date(2025, 4, 17), date(2025, 4, 23)))
    assert days == [date(2025, 4, 17), date(2025, 4, 22), date(2025, 4, 23)]  # Easter
