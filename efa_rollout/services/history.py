"""The event log as the source of past truth: where each enrolment stood at a moment, and its history.

Every stage move ('enrolled', 'stage_changed'), status change, checklist tick and answer version is
an event with its time. Replaying the events up to AS_OF gives the stage, status, ticked items and
answers of that moment, whatever happened afterwards. An enrolment without any stage event (data
written before the log existed, or by hand) keeps its stored values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select
from sqlmodel import Session, col

from efa_rollout import texts
from efa_rollout.domain.text import german_date
from efa_rollout.services.clock import local_today
from efa_rollout.services.stamps import raw, utc
from efa_rollout.texts import say
from models import DeliveryAttempt, Enrolment, Event, Municipality, OutboxMessage

STAGE_EVENTS = ("enrolled", "stage_changed")
TICK_EVENTS = ("checklist_item_done", "checklist_item_reopened")
ANSWER_EVENTS = ("answers_submitted",)
REPLAYED = (*STAGE_EVENTS, "status_changed", *TICK_EVENTS, *ANSWER_EVENTS)

#: Stages whose first entry is a date people ask for (pilot since, live since, ...).
MILESTONE_STAGES = ("pilot", "silent_go_live", "go_live", "mandatory", "completed")


@dataclass(slots=True)
class PastState:
    """Where one enrolment stood at AS_OF, rebuilt from its events."""

    enrolment_id: int
    enrolled: bool = False
    stage: str | None = None
    stage_entered: datetime | None = None
    status: str | None = None
    replayed_stage: bool = False
    ticks: dict[str, bool] = field(default_factory=dict)
    submitted: int = 0
    answers_complete: bool | None = None
    milestones: dict[str, datetime] = field(default_factory=dict)
    first_status_after: str | None = None

    def done_keys(self, stored: Iterable[str]) -> set[str]:
        """Items done at AS_OF: the replayed ticks, else the stored (time-filtered) ones."""
        done = {key for key in stored if key not in self.ticks}
        return done | {key for key, ticked in self.ticks.items() if ticked}


def past_states(session: Session, campaign_id: str, *, as_of: datetime) -> dict[int, PastState]:
    """Enrolment id → its state at AS_OF, replayed from the campaign's events."""
    query = (
        select(
            col(Event.enrolment_id),
            raw(col(Event.at)),
            col(Event.kind),
            col(Event.to_stage),
            col(Event.data),
        )
        .where(
            col(Event.campaign_id) == campaign_id,
            col(Event.enrolment_id).is_not(None),
            col(Event.kind).in_(REPLAYED),
        )
        .order_by(col(Event.at), col(Event.id))
    )
    states: dict[int, PastState] = {}
    rows = cast(
        "Iterable[tuple[Any, ...]]", session.connection().execute(query)
    )  # mypy unpacks a Row of Any columns as object
    for enrolment_id, at_raw, kind, to_stage, data in rows:
        at = utc(at_raw)
        assert at is not None
        state = states.setdefault(enrolment_id, PastState(enrolment_id=enrolment_id))
        _apply(state, at, kind, to_stage, data or {}, as_of)
    for state in states.values():
        if state.status is None and state.first_status_after:
            state.status = state.first_status_after
    return states


def _apply(
    state: PastState,
    at: datetime,
    kind: str,
    to_stage: str | None,
    data: dict[str, Any],
    as_of: datetime,
) -> None:
    """Fold one event into STATE (events after AS_OF only tell the status before them)."""
    if kind in STAGE_EVENTS and to_stage:
        state.replayed_stage = True
    if at > as_of:
        if kind == "status_changed" and state.status is None and state.first_status_after is None:
            state.first_status_after = data.get("from")
        return
    if kind in STAGE_EVENTS and to_stage:
        state.enrolled = True
        state.stage, state.stage_entered = to_stage, at
        state.milestones.setdefault(to_stage, at)
    elif kind == "status_changed":
        state.status = data.get("to") or state.status
    elif kind in TICK_EVENTS and data.get("item"):
        state.ticks[str(data["item"])] = kind == "checklist_item_done"
    elif kind in ANSWER_EVENTS:
        state.submitted += 1
        state.answers_complete = bool(data.get("complete"))


#: The stage labels (domain.stages.STAGE_LABELS) keyed by the stored str.
_STAGE_TEXT: Mapping[str, str] = texts.table("stage")


def stage_label(stage: str | None) -> str:
    """German label of a stage key (the key itself when unknown)."""
    return _STAGE_TEXT.get(stage or "", stage or "?")


# --- the history as people read it -----------------------------------------------------------

#: Event kinds and delivery outcomes as people read them (templates/texts/events.ini).
KIND_LABELS: Mapping[str, str] = texts.table("history.kind")
OUTCOME_LABELS: Mapping[str, str] = texts.table("history.outcome")


@dataclass(slots=True)
class HistoryEntry:
    """One line of a municipality's (or the campaign's) history."""

    at: datetime
    ags: str | None
    name: str | None
    kind: str
    what: str
    who: str
    why: str | None
    recorded_at: datetime | None = None

    @property
    def kind_label(self) -> str:
        """The kind in German."""
        return KIND_LABELS.get(self.kind, self.kind)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "at": self.at,
            "ags": self.ags,
            "name": self.name,
            "kind": self.kind,
            "kind_label": self.kind_label,
            "what": self.what,
            "who": self.who,
            "why": self.why,
            "recorded_at": self.recorded_at,
        }


def campaign_history(
    session: Session,
    campaign_id: str,
    *,
    ags: str | None = None,
    as_of: datetime | None = None,
    with_mail: bool = True,
) -> list[HistoryEntry]:
    """Every event of CAMPAIGN_ID (only AGS's, when given) up to AS_OF, with mail attempts, in order."""
    names = _names(session, campaign_id)
    entries = [_entry(row, names) for row in _events(session, campaign_id, ags, as_of)]
    if with_mail:
        entries.extend(_attempts(session, campaign_id, ags, as_of, names))
    entries.sort(key=lambda e: e.at)
    return entries


def _events(session: Session, campaign_id: str, ags: str | None, as_of: datetime | None) -> Any:
    query = (
        select(Event)
        .where(col(Event.campaign_id) == campaign_id)
        .order_by(col(Event.at), col(Event.id))
    )
    if ags:
        query = query.where(col(Event.ags) == ags)
    if as_of is not None:
        query = query.where(col(Event.at) <= as_of)
    return session.scalars(query).all()


def _names(session: Session, campaign_id: str) -> dict[str, str]:
    query = (
        select(col(Municipality.ags), col(Municipality.name))
        .join(Enrolment, col(Enrolment.ags) == col(Municipality.ags))
        .where(col(Enrolment.campaign_id) == campaign_id)
    )
    return dict(session.connection().execute(query).all())


def _entry(event: Any, names: dict[str, str]) -> HistoryEntry:
    """A HistoryEntry from an Event row: 'what' says the change in words."""
    at = utc(event.at)
    recorded = (event.data or {}).get("recorded_at")
    recorded_at = utc(str(recorded)) if recorded else None
    return HistoryEntry(
        at=at,
        ags=event.ags,
        name=names.get(event.ags or ""),
        kind=event.kind,
        what=_what(event) + _late_note(at, recorded_at),
        who=event.actor,
        why=event.reason,
        recorded_at=recorded_at,
    )


def _late_note(at: datetime, recorded_at: datetime | None) -> str:
    """' (nachgetragen am …)' for an entry made on a later day than it happened.

    It tells the reader why a stage change between the two moments did not know of it.
    """
    if recorded_at is None or local_today(recorded_at) <= local_today(at):
        return ""
    return " " + say("history.late", day=german_date(local_today(recorded_at)))


def _what(event: Any) -> str:
    """The change of EVENT in German, with the details that matter."""
    data = event.data or {}
    label = KIND_LABELS.get(event.kind, event.kind)
    if event.kind in STAGE_EVENTS and event.to_stage:
        stage = stage_label(event.to_stage)
        if event.from_stage:
            text = say(
                "history.stage_from", label=label, before=stage_label(event.from_stage), stage=stage
            )
        else:
            text = say("history.stage", label=label, stage=stage)
        return say("history.by_hand", text=text) if data.get("override") else text
    if event.kind == "status_changed":
        return say(
            "history.change", label=label, before=data.get("from", "?"), after=data.get("to", "?")
        )
    if event.kind in TICK_EVENTS:
        item = data.get("item", "?")
        if data.get("note"):
            return say("history.item_note", label=label, item=item, note=data["note"])
        return say("history.item", label=label, item=item)
    if event.kind in ("answers_submitted", "answers_saved"):
        complete = say("history.complete" if data.get("complete") else "history.incomplete")
        return say(
            "history.answers", label=label, version=data.get("version", "?"), complete=complete
        )
    return label


def _attempts(
    session: Session,
    campaign_id: str,
    ags: str | None,
    as_of: datetime | None,
    names: dict[str, str],
) -> list[HistoryEntry]:
    """Every SMTP attempt of the campaign's mail, with the server's reply."""
    om, da = OutboxMessage, DeliveryAttempt
    query = (
        select(
            raw(col(da.at)),
            col(da.outcome),
            col(da.smtp_code),
            col(da.smtp_text),
            col(da.recipient),
            col(da.worker),
            col(om.ags),
            col(om.subject),
            col(om.recipients),
        )
        .join(om, col(om.id) == col(da.outbox_id))
        .where(col(om.campaign_id) == campaign_id, col(om.is_test).is_(False))
        .order_by(col(da.at), col(da.id))
    )
    if ags:
        query = query.where(col(om.ags) == ags)
    if as_of is not None:
        query = query.where(col(da.at) <= as_of)
    result = []
    rows = cast(
        "Iterable[tuple[Any, ...]]", session.connection().execute(query)
    )  # mypy unpacks a Row of Any columns as object
    for (
        at_raw,
        outcome,
        code,
        text,
        recipient,
        worker,
        m_ags,
        subject,
        recipients,
    ) in rows:
        to = recipient or ", ".join(recipients or [])
        reply = f"{code} {text or ''}".strip() if code else (text or "")
        result.append(
            HistoryEntry(
                at=utc(at_raw),
                ags=m_ags,
                name=names.get(m_ags or ""),
                kind="mail_attempt",
                what=say(
                    "history.mail",
                    outcome=OUTCOME_LABELS.get(outcome, outcome),
                    subject=subject,
                    to=to,
                ),
                who=f"Zustellung ({worker})" if worker else "Zustellung",
                why=(f"Antwort des Mailservers: {reply}" if code else f"Antwort: {reply}")
                if reply
                else None,
            )
        )
    return result
