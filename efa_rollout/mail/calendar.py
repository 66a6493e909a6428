"""Calendar invites (RFC 5545) for the key dates a mail names: trainings, cut-off, go-live.

Every entry has a UID stable per campaign, municipality and date key, so a moved date
replaces the old entry in the recipient's calendar; SEQUENCE rises each time the date of a
UID changes (counted from the invites already in the outbox).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from icalendar import Calendar, Event, Timezone
from icalendar.parser import Contentline
from icalendar.prop import vText
from sqlmodel import Session, col, select

from efa_rollout.mail.message import Attachment
from efa_rollout.settings import Settings
from models import OutboxMessage

ICS_FILENAME = "Termine.ics"
ICS_MIME = "text/calendar"
#: Kinds that carry the invites: the request (all coming dates) and reminders (dates soon).
KINDS_WITH_CALENDAR = frozenset({"information_request", "reminder"})
#: A reminder carries the key dates of the next weeks again.
REMINDER_HORIZON_DAYS = 21
_UID_PART = re.compile(r"[^A-Za-z0-9-]+")


@dataclass(frozen=True)
class KeyDate:
    """One calendar entry: key ('go_live', 'training-1', …), title and day."""

    key: str
    title: str
    day: date


def key_date_entries(
    service: str, go_live: date, dates: dict[str, Any], *, is_pilot: bool = False
) -> list[KeyDate]:
    """The campaign's key dates as calendar entries (silent go-live only for pilots)."""
    entries = [KeyDate("go_live", f"{service}: Start (Go-Live)", go_live)]
    if dates.get("collection_deadline"):
        title = f"{service}: Rückmeldefrist Fragebogen"
        entries.append(KeyDate("collection_deadline", title, dates["collection_deadline"]))
    if is_pilot and dates.get("silent_go_live"):
        entries.append(
            KeyDate("silent_go_live", f"{service}: Silent Go-Live", dates["silent_go_live"])
        )
    if dates.get("mandatory_from"):
        title = f"{service}: Verpflichtende Nutzung ab heute"
        entries.append(KeyDate("mandatory_from", title, dates["mandatory_from"]))
    for number, day in enumerate(dates.get("trainings") or [], start=1):
        entries.append(KeyDate(f"training-{number}", f"{service}: Schulung", day))
    return sorted(entries, key=lambda e: (e.day, e.key))


def entry_uid(campaign_id: str, ags: str, key: str, domain: str) -> str:
    """'viba-ostalbkreis.08136019.go_live@ostalbkreis.example': one per entry, forever."""
    parts = (_UID_PART.sub("-", campaign_id), ags, key.replace("_", "-"))
    return f"{'.'.join(parts)}@{domain}"


def build_calendar(
    entries: Sequence[KeyDate],
    *,
    campaign_id: str,
    ags: str,
    location: str,
    description: str,
    domain: str,
    sequences: dict[str, int],
    now: datetime,
    settings: Settings,
) -> bytes:
    """A VCALENDAR (METHOD:PUBLISH, VTIMEZONE of the configured zone) with all-day events."""
    calendar = Calendar()
    calendar.add("prodid", "-//efa-rollout//Einfuehrungskoordination//DE")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-timezone", settings.timezone)
    first = min(e.day for e in entries)
    calendar.add_component(
        Timezone.from_tzid(
            settings.timezone,
            first_date=first - timedelta(days=366),
            last_date=first.replace(year=first.year + 3),
        )
    )
    stamp = now.astimezone(settings.zone)
    for entry in entries:
        event = Event()
        uid = entry_uid(campaign_id, ags, entry.key, domain)
        event.add("uid", uid)
        event.add("sequence", sequences.get(uid, 0))
        event.add("dtstamp", stamp)
        event.add("dtstart", entry.day)
        event.add("dtend", entry.day + timedelta(days=1))
        event.add("summary", entry.title)
        event.add("location", location)
        event.add("description", description)
        event.add("transp", "TRANSPARENT")  # a date to know, not a busy slot
        event.add("x-efa-key", entry.key)
        calendar.add_component(event)
    return calendar.to_ical()


# Stand-ins for what differs between the municipalities of one campaign: the calendar is built
# with them once per campaign, date set and moment (`_calendar_template`), and each mail's copy
# is that template with its own values put in and the changed lines folded again.
_AGS_MARK = "QQefaAGSmarkQQ"
_LABEL_MARK = "QQefaLABELmarkQQ"
_SEQUENCE_MARK = 987_654_000  # + the entry's position


_templates: dict[tuple[Any, ...], tuple[bytes | str, ...]] = {}


def _calendar_template(
    entries: tuple[KeyDate, ...],
    campaign_id: str,
    title: str,
    domain: str,
    now: datetime,
    settings: Settings,
) -> tuple[bytes | str, ...]:
    """The calendar's content lines: folded bytes where fixed, unfolded text where marked."""
    key = (entries, campaign_id, title, domain, now, settings.timezone)
    if key in _templates:
        return _templates[key]
    marks = {
        entry_uid(campaign_id, _AGS_MARK, e.key, domain): _SEQUENCE_MARK + n
        for n, e in enumerate(entries)
    }
    content = build_calendar(
        entries,
        campaign_id=campaign_id,
        ags=_AGS_MARK,
        location=_LABEL_MARK,
        description=_description(title, _LABEL_MARK),
        domain=domain,
        sequences=marks,
        now=now,
        settings=settings,
    )
    unfolded = content.decode().replace("\r\n ", "").split("\r\n")[:-1]
    lines = tuple(
        line
        if _AGS_MARK in line or _LABEL_MARK in line or _is_sequence_mark(line)
        else Contentline(line).to_ical()
        for line in unfolded
    )
    if len(_templates) >= 64:
        _templates.clear()
    _templates[key] = lines
    return lines


def _is_sequence_mark(line: str) -> bool:
    return line.startswith(f"SEQUENCE:{_SEQUENCE_MARK // 1000}")


def _description(title: str, label: str) -> str:
    return f"{title} – Einführung in der {label}"


def fold(line: str) -> bytes:
    """LINE folded as icalendar folds it (RFC 5545: at most 75 octets), byte for byte, faster.

    Greedy chunks of at most 74 octets that end on a character boundary; an escaping backslash
    or caret at a chunk's end goes with the next chunk (icalendar's rule, its issue #1501).
    """
    raw = line.encode()
    chunks: list[bytes] = []
    start = 0
    while len(raw) - start > _FOLD_OCTETS:
        end = start + _FOLD_OCTETS
        while raw[end] & 0xC0 == 0x80:  # inside a multi-byte character: not before its start
            end -= 1
        if raw[end - 1 : end] in (b"\\", b"^") and end - 1 > start:
            end -= 1
        chunks.append(raw[start:end])
        start = end
    chunks.append(raw[start:])
    return b"\r\n ".join(chunks)


_FOLD_OCTETS = 74


def calendar_for(
    entries: Sequence[KeyDate],
    *,
    campaign_id: str,
    title: str,
    ags: str,
    label: str,
    domain: str,
    sequences: dict[str, int],
    now: datetime,
    settings: Settings,
) -> bytes:
    """`build_calendar` for one municipality, byte for byte, from the campaign's template."""
    template = _calendar_template(tuple(entries), campaign_id, title, domain, now, settings)
    escaped = vText(label).to_ical().decode()
    by_position = [sequences.get(entry_uid(campaign_id, ags, e.key, domain), 0) for e in entries]
    lines: list[bytes] = []
    for line in template:
        if isinstance(line, bytes):
            lines.append(line)
            continue
        if _is_sequence_mark(line):
            line = f"SEQUENCE:{by_position[int(line[9:]) - _SEQUENCE_MARK]}"
        line = line.replace(_AGS_MARK, ags).replace(_LABEL_MARK, escaped)
        lines.append(fold(line))
    return b"\r\n".join(lines) + b"\r\n"


def sent_dates(session: Session | None, campaign_id: str, ags: str) -> dict[str, tuple[str, int]]:
    """UID → (date, sequence) as last sent to AGS, from the invites already in the outbox."""
    if session is None:
        return {}
    return sent_dates_batch(session, campaign_id, [ags]).get(ags, {})


def sent_dates_batch(
    session: Session, campaign_id: str, ags_list: Sequence[str]
) -> dict[str, dict[str, tuple[str, int]]]:
    """`sent_dates` for every AGS of AGS_LIST with one query: AGS → UID → (date, sequence)."""
    rows = session.exec(
        select(OutboxMessage.ags, OutboxMessage.meta)
        .where(OutboxMessage.campaign_id == campaign_id, col(OutboxMessage.ags).in_(ags_list))
        .order_by(col(OutboxMessage.id))
    ).all()
    sent: dict[str, dict[str, tuple[str, int]]] = {}
    for ags, meta in rows:
        for uid, (day, sequence) in ((meta or {}).get("calendar") or {}).items():
            sent.setdefault(ags or "", {})[uid] = (day, int(sequence))
    return sent


def next_sequences(
    entries: Sequence[KeyDate], uids: dict[str, str], sent: dict[str, tuple[str, int]]
) -> dict[str, int]:
    """SEQUENCE per UID: as sent before for the same date, one higher for a moved date."""
    sequences = {}
    for entry in entries:
        uid = uids[entry.key]
        previous = sent.get(uid)
        if previous is None:
            sequences[uid] = 0
        else:
            day, sequence = previous
            sequences[uid] = sequence if day == entry.day.isoformat() else sequence + 1
    return sequences


def calendar_attachment(
    session: Session | None,
    *,
    context: dict[str, Any],
    campaign_id: str,
    ags: str,
    is_pilot: bool,
    now: datetime,
    settings: Settings,
    sent: dict[str, tuple[str, int]] | None = None,
) -> tuple[Attachment, dict[str, list[Any]]] | None:
    """The .ics for a mail of context['kind'] and what to remember in its meta; None if none.

    SENT: the `sent_dates` of AGS, when the caller loaded them (for a whole batch).
    """
    kind = context["kind"]
    if kind not in KINDS_WITH_CALENDAR:
        return None
    today = context["today"]
    horizon = None if kind == "information_request" else today + timedelta(REMINDER_HORIZON_DAYS)
    entries = [
        e
        for e in key_date_entries(
            context["campaign"]["service"], context["go_live"], context["dates"], is_pilot=is_pilot
        )
        if e.day >= today and (horizon is None or e.day <= horizon)
    ]
    if not entries:
        return None
    domain = settings.effective_message_id_domain
    uids = {e.key: entry_uid(campaign_id, ags, e.key, domain) for e in entries}
    if sent is None:
        sent = sent_dates(session, campaign_id, ags)
    sequences = next_sequences(entries, uids, sent)
    content = calendar_for(
        entries,
        campaign_id=campaign_id,
        title=context["campaign"]["title"],
        ags=ags,
        label=(context.get("municipality") or {}).get("label", ""),
        domain=domain,
        sequences=sequences,
        now=now,
        settings=settings,
    )
    meta = {uids[e.key]: [e.day.isoformat(), sequences[uids[e.key]]] for e in entries}
    return Attachment(ICS_FILENAME, content, ICS_MIME), meta
