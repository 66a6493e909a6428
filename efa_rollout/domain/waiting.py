"""What a municipality that cannot move waits for, as a plain function over its facts.

`waiting_for` answers for one enrolment: None when a stage transition is due now (it moves at
the next tick), else a German "wartet auf: …" and whom it waits for. `needs_action` is True when
time alone will not move it (the municipality, the coordinator or the summary run must act);
such municipalities flag their campaign.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from efa_rollout.domain.rules import Facts, Timeline, fmt, go_live_date, next_transition
from efa_rollout.domain.stages import EnrolmentStatus, Stage


class Actor(StrEnum):
    """Who has to act for the municipality to move on."""

    NOBODY = "nobody"  # a date will move it
    MUNICIPALITY = "municipality"
    COORDINATOR = "coordinator"
    SYSTEM = "system"  # a scheduled run (e.g. the summary) is due


ACTOR_LABELS = {
    Actor.NOBODY: "Termin",
    Actor.MUNICIPALITY: "Gemeinde",
    Actor.COORDINATOR: "Koordination",
    Actor.SYSTEM: "geplanter Lauf",
}


@dataclass(frozen=True)
class SummaryFacts:
    """The campaign's summary as far as the waiting rule needs it."""

    date: date | None = None
    approval_required: bool = False
    approved: bool = False
    rejected_note: str | None = None


@dataclass(frozen=True)
class Waiting:
    """What one enrolment waits for, whom, and whether time alone will move it."""

    what: str
    actor: Actor
    needs_action: bool = False

    @property
    def text(self) -> str:
        """'wartet auf: …'."""
        return f"wartet auf: {self.what}"


def waiting_for(
    facts: Facts,
    timeline: Timeline,
    today: date,
    *,
    summary: SummaryFacts | None = None,
    questions_open: int = 0,
    pause_reason: str | None = None,
) -> Waiting | None:
    """What FACTS wait for on TODAY; None when a transition is due now or nothing is awaited."""
    if facts.status == EnrolmentStatus.PAUSED:
        why = f" (pausiert: {pause_reason})" if pause_reason else " (pausiert)"
        return Waiting(f"Fortsetzung durch die Koordination{why}", Actor.COORDINATOR, True)
    if facts.status != EnrolmentStatus.ACTIVE or facts.stage == Stage.COMPLETED:
        return None
    if next_transition(facts, timeline, today) is not None:
        return None
    rule = _WAITS.get(facts.stage)
    if rule is None:
        return None
    return rule(facts, timeline, today, summary or SummaryFacts(), questions_open)


def _collection(
    facts: Facts, timeline: Timeline, today: date, summary: SummaryFacts, questions_open: int
) -> Waiting:
    what = (
        f"Antworten ({questions_open} Pflichtfeld{'er' if questions_open != 1 else ''} offen)"
        if questions_open
        else "Absenden der Antworten im Portal"
    )
    # the deadline moves it on in any case: waiting, not stuck
    return Waiting(f"{what}, Frist {fmt(timeline.collection_deadline)}", Actor.MUNICIPALITY)


def _summary(
    facts: Facts, timeline: Timeline, today: date, summary: SummaryFacts, questions_open: int
) -> Waiting:
    if summary.date is not None and today < summary.date:
        return Waiting(f"Zusammenfassung am {fmt(summary.date)}", Actor.NOBODY)
    if summary.approval_required and not summary.approved:
        if summary.rejected_note:
            return Waiting(
                f"überarbeitete Zusammenfassung (abgelehnt: {summary.rejected_note})",
                Actor.COORDINATOR,
                True,
            )
        return Waiting("Freigabe der Zusammenfassung", Actor.COORDINATOR, True)
    return Waiting("Versand der Zusammenfassung", Actor.SYSTEM, True)


def _checklist(
    facts: Facts, timeline: Timeline, today: date, summary: SummaryFacts, questions_open: int
) -> Waiting:
    go_live = go_live_date(facts, timeline)
    if today >= go_live and facts.required_open > 0:
        return Waiting(_open_items(facts.required_open), Actor.MUNICIPALITY, True)
    if (
        facts.is_pilot
        and Stage.PILOT in timeline.stages
        and timeline.pilot_start is not None
        and today < timeline.pilot_start
    ):
        return Waiting(f"Pilotphase ab {fmt(timeline.pilot_start)}", Actor.NOBODY)
    return Waiting(f"Go-Live am {fmt(go_live)}", Actor.NOBODY)


def _pilot(
    facts: Facts, timeline: Timeline, today: date, summary: SummaryFacts, questions_open: int
) -> Waiting:
    if timeline.silent_go_live is not None and Stage.SILENT_GO_LIVE in timeline.stages:
        return Waiting(f"Silent Go-Live am {fmt(timeline.silent_go_live)}", Actor.NOBODY)
    return Waiting(f"Go-Live am {fmt(go_live_date(facts, timeline))}", Actor.NOBODY)


def _silent(
    facts: Facts, timeline: Timeline, today: date, summary: SummaryFacts, questions_open: int
) -> Waiting:
    return Waiting(f"Go-Live am {fmt(go_live_date(facts, timeline))}", Actor.NOBODY)


def _live(
    facts: Facts, timeline: Timeline, today: date, summary: SummaryFacts, questions_open: int
) -> Waiting | None:
    mandatory = timeline.mandatory_from
    if mandatory is not None and Stage.MANDATORY in timeline.stages and today < mandatory:
        return Waiting(f"verpflichtende Nutzung ab {fmt(mandatory)}", Actor.NOBODY)
    if facts.stage == Stage.AFTER_CARE:
        end = go_live_date(facts, timeline) + timedelta(days=timeline.after_care_days or 0)
        return Waiting(f"Ende der Nachbetreuung am {fmt(end)}", Actor.NOBODY)
    return None


def _mandatory(
    facts: Facts, timeline: Timeline, today: date, summary: SummaryFacts, questions_open: int
) -> Waiting:
    return Waiting(_open_items(facts.required_open), Actor.MUNICIPALITY, True)


def _open_items(count: int) -> str:
    return f"Checkliste ({count} Pflichtpunkt{'e' if count != 1 else ''} offen)"


_WAITS = {
    Stage.INFORMATION_COLLECTION: _collection,
    Stage.SUMMARY_DISTRIBUTION: _summary,
    Stage.CHECKLIST_FOLLOW_UP: _checklist,
    Stage.PILOT: _pilot,
    Stage.SILENT_GO_LIVE: _silent,
    Stage.GO_LIVE: _live,
    Stage.AFTER_CARE: _live,
    Stage.MANDATORY: _mandatory,
}


def campaign_flag(waits: list[Waiting | None]) -> str | None:
    """The campaign's flag when municipalities cannot move without someone acting, else None."""
    stuck = [w for w in waits if w is not None and w.needs_action]
    if not stuck:
        return None
    counts: dict[str, int] = {}
    for wait in stuck:
        counts[wait.what] = counts.get(wait.what, 0) + 1
    parts = ", ".join(f"{n} × {what}" for what, n in sorted(counts.items(), key=lambda x: -x[1]))
    return f"Achtung: {len(stuck)} Gemeinde(n) kommen ohne Zutun nicht weiter ({parts})."
