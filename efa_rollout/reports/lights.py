"""The traffic light of a municipality: the rules behind the legend in model.LIGHT_LEGEND."""

from __future__ import annotations

from datetime import date

from efa_rollout.reports.model import DUE_SOON_DAYS, MunicipalityStatus


def judge(m: MunicipalityStatus, *, today: date, deadline: date | None) -> tuple[str, list[str]]:
    """The light (red/yellow/green/grey) of M at TODAY, with the reasons in German."""
    if m.status == "paused":
        return "grey", ["Teilnahme pausiert"]
    if m.status == "not_applicable":
        return "grey", ["Kampagne trifft nicht zu"]
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
        reasons.append(f"{_items(m.required_overdue)} überfällig (Pflicht)")
    if not m.answered and deadline is not None and today > deadline and not _live(m):
        reasons.append(f"Fragebogen fehlt, Frist {deadline:%d.%m.%Y} abgelaufen")
    if m.unresolved_failed_mail:
        reasons.append("Mail nicht zugestellt")
    if m.contacts == 0:
        reasons.append("keine Ansprechperson")
    elif m.working_contacts == 0:
        reasons.append("keine zustellbare Adresse")
    return reasons


def _yellow_reasons(m: MunicipalityStatus, *, today: date, deadline: date | None) -> list[str]:
    """Items due soon, optional items overdue, answers still missing before the deadline."""
    reasons = []
    if m.items_due_soon:
        reasons.append(f"{_items(m.items_due_soon)} in den nächsten {DUE_SOON_DAYS} Tagen fällig")
    optional_overdue = m.items_overdue - m.required_overdue
    if optional_overdue:
        reasons.append(f"{_items(optional_overdue)} überfällig (freiwillig)")
    if not m.answered and (deadline is None or today <= deadline) and not _live(m):
        until = f" (Frist {deadline:%d.%m.%Y})" if deadline else ""
        reasons.append(f"Fragebogen noch nicht beantwortet{until}")
    return reasons


#: Stages in which the service runs: a missing questionnaire no longer matters there.
LIVE_STAGES = frozenset({"silent_go_live", "go_live", "after_care", "mandatory", "completed"})


def _live(m: MunicipalityStatus) -> bool:
    return m.stage in LIVE_STAGES


def _items(count: int) -> str:
    return "1 Punkt" if count == 1 else f"{count} Punkte"
