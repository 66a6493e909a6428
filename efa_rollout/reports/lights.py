"""The traffic light of a municipality: the rules behind the legend in model.LIGHT_LEGEND."""

from __future__ import annotations

from datetime import date

from efa_rollout.reports.model import DUE_SOON_DAYS, MunicipalityStatus
from efa_rollout.texts import say


def judge(m: MunicipalityStatus, *, today: date, deadline: date | None) -> tuple[str, list[str]]:
    """The light (red/yellow/green/grey) of M at TODAY, with the reasons in German."""
    if m.status == "paused":
        return "grey", [say("light_reason.paused")]
    if m.status == "not_applicable":
        return "grey", [say("light_reason.not_applicable")]
    if m.stage == "completed":  # done is done: nothing left to chase
        return "green", []
    red = _red_reasons(m, today=today, deadline=deadline)
    if red:
        return "red", red
    yellow = _yellow_reasons(m, today=today, deadline=deadline)
    if yellow:
        return "yellow", yellow
    return "green", []


def _red_reasons(m: MunicipalityStatus, *, today: date, deadline: date | None) -> list[str]:
    """Overdue required items, answers missing after the deadline, failed mail, no contact."""
    reasons = []
    if m.required_overdue:
        reasons.append(say("light_reason.required_overdue", items=_items(m.required_overdue)))
    if not m.answered and deadline is not None and today > deadline and not _live(m):
        reasons.append(say("light_reason.answers_missing", deadline=f"{deadline:%d.%m.%Y}"))
    if m.unresolved_failed_mail:
        reasons.append(say("light_reason.mail_failed"))
    if m.contacts == 0:
        reasons.append(say("light_reason.no_contact"))
    elif m.working_contacts == 0:
        reasons.append(say("light_reason.no_working_contact"))
    return reasons


def _yellow_reasons(m: MunicipalityStatus, *, today: date, deadline: date | None) -> list[str]:
    """Items due soon, optional items overdue, answers missing before the deadline, unclear mail."""
    reasons = []
    if m.items_due_soon:
        reasons.append(
            say("light_reason.due_soon", items=_items(m.items_due_soon), days=DUE_SOON_DAYS)
        )
    optional_overdue = m.items_overdue - m.required_overdue
    if optional_overdue:
        reasons.append(say("light_reason.optional_overdue", items=_items(optional_overdue)))
    if not m.answered and (deadline is None or today <= deadline) and not _live(m):
        if deadline:
            reasons.append(say("light_reason.unanswered_until", deadline=f"{deadline:%d.%m.%Y}"))
        else:
            reasons.append(say("light_reason.unanswered"))
    if m.unresolved_unclear_mail and not m.unresolved_failed_mail:
        # The server may have taken the mail: worth a look in its log, not an alarm.
        reasons.append(say("light_reason.mail_unclear"))
    return reasons


#: Stages in which the service runs: a missing questionnaire no longer matters there.
LIVE_STAGES = frozenset({"silent_go_live", "go_live", "after_care", "mandatory", "completed"})


def _live(m: MunicipalityStatus) -> bool:
    return m.stage in LIVE_STAGES


def _items(count: int) -> str:
    return say("light_reason.one_item") if count == 1 else say("light_reason.items", count=count)
