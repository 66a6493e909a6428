"""Checklist ticks: set an item, keep ``required_open`` right, the checklist view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from efa_rollout.definitions import CampaignDefinition, ChecklistItem
from efa_rollout.domain.audit import EventKind
from efa_rollout.errors import UserError
from efa_rollout.services.answers import check_source, touch_enrolment
from efa_rollout.services.contacts import Problem
from efa_rollout.services.late_entry import LateEntry, check_item_moment
from efa_rollout.services.lookup import campaign_definition, get_campaign
from efa_rollout.texts import say
from models import (
    ChecklistItemState,
    Enrolment,
    Event,
)

#: Longest note on a checklist item.
MAX_NOTE = 2000


def recompute_required_open(
    session: Session, enrolment: Enrolment, definition: CampaignDefinition
) -> int:
    """Set and return ``enrolment.required_open``: required applicable items not done."""
    assert enrolment.id is not None
    required = [
        i.key for i in definition.items_for(enrolment.role, enrolment.is_pilot) if i.required
    ]
    done = set(
        session.exec(
            select(ChecklistItemState.item_key).where(
                ChecklistItemState.enrolment_id == enrolment.id,
                ChecklistItemState.done == True,  # noqa: E712
            )
        ).all()
    )
    enrolment.required_open = sum(1 for key in required if key not in done)
    session.add(enrolment)
    return enrolment.required_open


def _item(definition: CampaignDefinition, enrolment: Enrolment, item_key: str) -> ChecklistItem:
    items = {i.key: i for i in definition.items_for(enrolment.role, enrolment.is_pilot)}
    item = items.get(item_key)
    if item is not None:
        return item
    valid = ", ".join(items) or say("service.checklist.no_items")
    if any(i.key == item_key for i in definition.checklist):
        message = say("service.checklist.not_applicable", item=item_key)
    else:
        message = say("service.checklist.unknown", item=item_key)
    raise UserError(message, details=[say("service.checklist.valid", valid=valid)])


def set_checklist_item(
    session: Session,
    *,
    enrolment: Enrolment,
    item_key: str,
    done: bool,
    note: str | None,
    source: str,
    author: str,
    now: datetime,
    expected_version: int | None = None,
    late: LateEntry | None = None,
) -> ChecklistItemState:
    """Mark one checklist item done (or open again) and recompute ``required_open``.

    Setting the state it already has, with the same note, changes nothing and logs nothing.
    LATE (optional): NOW is when it happened, earlier than its entry. Flushes, does not commit.
    """
    check_source(source)
    assert enrolment.id is not None
    definition = campaign_definition(get_campaign(session, enrolment.campaign_id))
    _item(definition, enrolment, item_key)
    if note is not None:
        note = note.strip() or None
        if note is not None and len(note) > MAX_NOTE:
            raise UserError(say("service.checklist.note_too_long", limit=MAX_NOTE))
    state = session.exec(
        select(ChecklistItemState).where(
            ChecklistItemState.enrolment_id == enrolment.id,
            ChecklistItemState.item_key == item_key,
        )
    ).first()
    if state is None:  # created at enrolment normally; be forgiving for late definition items
        state = ChecklistItemState(enrolment_id=enrolment.id, item_key=item_key, updated_at=now)
    elif state.done == done and (note is None or note == state.note):
        return state
    if late is not None:
        check_item_moment(session, enrolment, item_key, now, late)
    recorded = late.recorded_at if late else now
    touch_enrolment(enrolment, recorded, expected_version)
    state.done = done
    state.done_at = now if done else None
    if note is not None:
        state.note = note
    state.source = source
    state.author = author
    state.updated_at = recorded
    session.add(state)
    session.flush()
    recompute_required_open(session, enrolment, definition)
    session.add(
        Event(
            at=now,
            campaign_id=enrolment.campaign_id,
            ags=enrolment.ags,
            enrolment_id=enrolment.id,
            actor=author,
            kind=EventKind.CHECKLIST_ITEM_DONE if done else EventKind.CHECKLIST_ITEM_REOPENED,
            data={
                "item": item_key,
                "note": note,
                "source": source,
                **(late.event_data(now) if late else {}),
            },
        )
    )
    session.flush()
    return state


def checklist_view(
    session: Session,
    enrolment: Enrolment,
    definition: CampaignDefinition,
    *,
    today: date,
) -> list[dict[str, Any]]:
    """The applicable checklist of ENROLMENT with due dates and state, in definition order.

    Each entry: key, title, owner, required, help, due (date), done, done_at, note, overdue.
    """
    assert enrolment.id is not None
    go_live = enrolment.go_live or get_campaign(session, enrolment.campaign_id).go_live
    states = {
        s.item_key: s
        for s in session.exec(
            select(ChecklistItemState).where(ChecklistItemState.enrolment_id == enrolment.id)
        ).all()
    }
    view: list[dict[str, Any]] = []
    for item in definition.items_for(enrolment.role, enrolment.is_pilot):
        state = states.get(item.key)
        done = bool(state and state.done)
        due = go_live + timedelta(days=item.due)
        view.append(
            {
                "key": item.key,
                "title": item.title,
                "owner": item.owner,
                "required": item.required,
                "help": item.help,
                "due": due,
                "done": done,
                "done_at": state.done_at if state else None,
                "note": state.note if state else None,
                "overdue": not done and due < today,
            }
        )
    return view


def by_municipality(item: Mapping[str, Any]) -> bool:
    """True for items the municipality ticks itself (others are confirmed by their owner)."""
    return str(item.get("owner", "Gemeinde")) == "Gemeinde"


def note_problems(ticks: Mapping[str, tuple[bool, str]]) -> dict[str, Problem]:
    """Problems of posted TICKS (item key → done, note) before anything is stored."""
    return {
        key: Problem("checklist.note_too_long", {"limit": MAX_NOTE})
        for key, (_, note) in ticks.items()
        if len(note) > MAX_NOTE
    }


def update_checklist(
    session: Session,
    *,
    enrolment: Enrolment,
    view: Sequence[Mapping[str, Any]],
    ticks: Mapping[str, tuple[bool, str]],
    source: str,
    author: str,
    now: datetime,
) -> int:
    """Store the TICKS (item key → done, note) that differ from VIEW; how many changed."""
    changed = 0
    for item in view:
        if item["key"] not in ticks:
            continue
        done, note = ticks[item["key"]]
        if done == item["done"] and note == (item["note"] or ""):
            continue
        set_checklist_item(
            session,
            enrolment=enrolment,
            item_key=item["key"],
            done=done,
            note=note,
            source=source,
            author=author,
            now=now,
        )
        changed += 1
    return changed
