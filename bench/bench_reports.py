"""Benchmark: reports for a ViBa-BW-like campaign over all 10,981 German municipalities.

Imports the official directory (GV100AD) into a fresh SQLite database, bulk-inserts a synthetic
campaign (stages, ticks, answers, contacts, mail, events), then times the roll-up and each output
format and measures peak memory.

    .venv/bin/python bench/bench_reports.py [--area 08136] [--keep DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parent.parent
GV100AD = Path(
    os.environ.get("EFA_GV100AD", REPO_ROOT.parent / "shared" / "data" / "GV100AD_301123.txt")
)
CAMPAIGN_ID = "viba-bw-synthetisch"
ZONE = ZoneInfo("Europe/Berlin")
AS_OF = datetime.combine(date(2025, 3, 14), clock(9, 0), tzinfo=ZONE).astimezone(UTC)
GO_LIVE = date(2025, 5, 1)
DEADLINE = date(2024, 7, 31)
START = datetime.combine(date(2024, 4, 2), clock(9, 0), tzinfo=ZONE).astimezone(UTC)
#: How far enrolments have got: stage → weight (before status and own go-live are drawn).
STAGE_WEIGHTS = {
    "information_collection": 14,
    "summary_distribution": 10,
    "checklist_follow_up": 46,
    "pilot": 4,
    "silent_go_live": 6,
    "go_live": 12,
    "after_care": 5,
    "mandatory": 2,
    "completed": 1,
}
ROLES = {"landratsamt": 80, "eigene": 15, "vg_rosenstein": 5}


@dataclass
class Rows:
    """Synthetic rows, ready for executemany."""

    enrolments: list[dict[str, Any]]
    items: list[dict[str, Any]]
    responses: list[dict[str, Any]]
    contacts: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    events: list[dict[str, Any]]


def use_data_dir(data_dir: Path) -> None:
    """Point the settings (and the engine) at DATA_DIR."""
    from efa_rollout import db
    from efa_rollout.settings import get_settings

    os.environ["EFA_DATA_DIR"] = str(data_dir)
    os.environ.pop("EFA_DATABASE_URL", None)
    get_settings.cache_clear()
    db.reset_engines()


def import_directory(area: str | None) -> int:
    """Import GV100AD (all of Germany, or the area's district/state) with the project's importer."""
    from efa_rollout.db import session_scope
    from efa_rollout.importers.municipalities import import_municipalities

    district = area if area and len(area) == 5 else None
    state = area if area and len(area) == 2 else None
    with session_scope() as session:
        import_municipalities(session, GV100AD, district=district, state=state)
    return count_municipalities(area)


def count_municipalities(area: str | None) -> int:
    """Municipalities (record type 60, incl. unincorporated areas) in AREA."""
    from sqlalchemy import func, select

    from efa_rollout.db import get_engine
    from models import Municipality

    query = select(func.count()).select_from(Municipality)
    if area:
        query = query.where(Municipality.ags.startswith(area))
    with get_engine().connect() as conn:
        return int(conn.execute(query).scalar_one())


def create_campaign(area: str | None) -> None:
    """A campaign from the shipped ViBa BW definition, going live on GO_LIVE."""
    from efa_rollout.db import session_scope
    from efa_rollout.definitions import get_definition
    from models import Campaign

    definition = get_definition("viba-bw")
    with session_scope() as session:
        session.add(
            Campaign(
                id=CAMPAIGN_ID,
                template=definition.key,
                title=f"{definition.title} (synthetische Daten)",
                service=definition.service,
                area_code=area or "DE",
                area_name="Ostalbkreis" if area == "08136" else (area or "Deutschland"),
                go_live=GO_LIVE,
                dates=definition.resolve_dates(GO_LIVE, {"collection_deadline": DEADLINE}),
                definition=definition.model_dump(mode="json"),
                status="running",
                created_at=START - timedelta(days=1),
                started_at=START,
            )
        )


def synthesize(area: str | None, seed: int = 8136) -> Rows:
    """Random but plausible rows for every municipality of AREA (seeded, so runs compare)."""
    from sqlalchemy import select

    from efa_rollout.db import get_engine
    from efa_rollout.definitions import get_definition
    from models import Municipality

    definition = get_definition("viba-bw")
    order = [s.value for s in definition.ordered_stages()]
    rng = random.Random(seed)
    query = select(Municipality.ags)  # all of them, as the benchmark's brief asks (incl. 65/66)
    if area:
        query = query.where(Municipality.ags.startswith(area))
    with get_engine().connect() as conn:
        all_ags = sorted(conn.execute(query).scalars())
    rows = Rows([], [], [], [], [], [])
    for enrolment_id, ags in enumerate(all_ags, start=1):
        _one(rows, rng, enrolment_id, ags, definition, order)
    return rows


def _one(
    rows: Rows, rng: random.Random, eid: int, ags: str, definition: Any, order: list[str]
) -> None:
    """Rows for one municipality: enrolment, its history, ticks, answers, contacts and mail."""
    stage = rng.choices(list(STAGE_WEIGHTS), weights=list(STAGE_WEIGHTS.values()))[0]
    reached = order.index(stage)
    status = rng.choices(["active", "paused", "not_applicable"], weights=[95, 3, 2])[0]
    role = rng.choices(list(ROLES), weights=list(ROLES.values()))[0]
    is_pilot = rng.random() < 0.05
    own_go_live = (
        GO_LIVE + timedelta(days=rng.choice([-30, 14, 30])) if rng.random() < 0.05 else None
    )
    moments = sorted(_between(rng, START, AS_OF) for _ in range(reached))
    entered = moments[-1] if moments else START + timedelta(minutes=eid % 600)
    rows.enrolments.append(
        {
            "id": eid,
            "campaign_id": CAMPAIGN_ID,
            "ags": ags,
            "stage": stage,
            "stage_entered_at": entered,
            "status": status,
            "role": role,
            "role_attributes": {},
            "is_pilot": is_pilot,
            "go_live": own_go_live,
            "answers_complete": reached > 0,
            "required_open": 0,
            "version": reached + 1,
            "updated_at": entered,
        }
    )
    _history(rows, eid, ags, order, moments)
    _ticks(rows, rng, eid, definition.items_for(role, is_pilot), own_go_live or GO_LIVE, reached)
    if reached > 0 or rng.random() < 0.4:
        rows.responses.append(_response(eid, _between(rng, START, entered)))
    _contacts_and_mail(rows, rng, ags)


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + (end - start) * rng.random()


def _history(rows: Rows, eid: int, ags: str, order: list[str], moments: list[datetime]) -> None:
    """An 'enrolled' event, then one 'stage_changed' per stage reached."""
    base = {
        "campaign_id": CAMPAIGN_ID,
        "ags": ags,
        "enrolment_id": eid,
        "actor": "bench",
        "data": {},
    }
    rows.events.append(
        {
            **base,
            "at": START,
            "kind": "enrolled",
            "from_stage": None,
            "to_stage": order[0],
            "reason": None,
        }
    )
    for step, at in enumerate(moments, start=1):
        rows.events.append(
            {
                **base,
                "at": at,
                "kind": "stage_changed",
                "from_stage": order[step - 1],
                "to_stage": order[step],
                "reason": "Regel",
            }
        )


def _ticks(
    rows: Rows, rng: random.Random, eid: int, items: list[Any], go_live: date, reached: int
) -> None:
    """Done items: likelier the further the municipality has got and the earlier the item was due."""
    for item in items:
        due = go_live + timedelta(days=item.due)
        overdue_days = (AS_OF.date() - due).days
        chance = 0.15 + 0.12 * reached + (0.25 if overdue_days > 0 else 0.0)
        if rng.random() < min(chance, 0.97):
            done_at = _between(rng, START, AS_OF)
            rows.items.append(
                {
                    "enrolment_id": eid,
                    "item_key": item.key,
                    "done": True,
                    "done_at": done_at,
                    "source": "portal",
                    "updated_at": done_at,
                }
            )


def _response(eid: int, at: datetime) -> dict[str, Any]:
    return {
        "enrolment_id": eid,
        "version": 1,
        "status": "submitted",
        "answers": {"funktionspostfach": "bauamt@gemeinde.example"},
        "complete": True,
        "source": "portal",
        "created_at": at,
    }


def _contacts_and_mail(rows: Rows, rng: random.Random, ags: str) -> None:
    """0–3 contacts (some bounced) and a few mails (some failed or unknown)."""
    count = rng.choices([0, 1, 2, 3], weights=[3, 45, 40, 12])[0]
    all_failed = rng.random() < 0.02
    for n in range(count):
        rows.contacts.append(
            {
                "ags": ags,
                "role": ["Bauamt", "Hauptamt", "Bürgermeister"][n],
                "email": f"kontakt{n}@{ags}.example",
                "is_shared_mailbox": n == 0,
                "delivery_failed_at": _between(rng, START, AS_OF) if all_failed else None,
                "updated_at": START,
            }
        )
    if count == 0:
        return
    for sequence in range(1, rng.randint(2, 4) + 1):
        queued = _between(rng, START, AS_OF)
        status = rng.choices(["sent", "failed_permanently", "unknown"], weights=[97, 2, 1])[0]
        rows.outbox.append(
            {
                "campaign_id": CAMPAIGN_ID,
                "ags": ags,
                "kind": "reminder",
                "sequence": sequence,
                "message_id": f"<bench-{ags}-{sequence}@ostalbkreis.example>",
                "sender": "egov-koordination@ostalbkreis.example",
                "recipients": [f"kontakt0@{ags}.example"],
                "cc": [],
                "subject": f"ViBa BW – Erinnerung {sequence}",
                "raw": b"",
                "is_test": False,
                "status": status,
                "attempts": 1,
                "queued_at": queued,
                "sent_at": queued + timedelta(minutes=2) if status == "sent" else None,
                "last_error": "550 5.1.1 mailbox unavailable" if status != "sent" else None,
                "recipient_status": {},
                "meta": {},
            }
        )


def insert_rows(rows: Rows) -> dict[str, int]:
    """Bulk insert (executemany) in one transaction; row counts per table."""
    from sqlalchemy import insert

    from efa_rollout.db import get_engine
    from models import (
        ChecklistItemState,
        Contact,
        Enrolment,
        Event,
        OutboxMessage,
        QuestionnaireResponse,
    )

    tables = [
        (Enrolment, rows.enrolments),
        (ChecklistItemState, rows.items),
        (QuestionnaireResponse, rows.responses),
        (Contact, rows.contacts),
        (OutboxMessage, rows.outbox),
        (Event, rows.events),
    ]
    with get_engine().begin() as conn:
        for model, data in tables:
            if data:
                conn.execute(insert(model.__table__), data)  # type: ignore[attr-defined]
    return {model.__name__: len(data) for model, data in tables}


def build_synthetic(area: str | None, seed: int = 8136) -> dict[str, int]:
    """Directory, campaign and synthetic rows in the current data folder."""
    municipalities = import_directory(area)
    create_campaign(area)
    counts = insert_rows(synthesize(area, seed))
    return {"Municipality": municipalities, **counts}


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Result:
    """One measured step."""

    step: str
    seconds: list[float]
    peak_mb: float | None = None
    note: str = ""
    cpu: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def timed(
    step: str, fn: Callable[[], Any], repeat: int, note: Callable[[Any], str] | None = None
) -> tuple[Result, Any]:
    """Run FN REPEAT times (wall clock), then once more under tracemalloc for its peak."""
    seconds, cpu, value = [], [], None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        value = fn()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return Result(step, seconds, peak / 1e6, note(value) if note else "", cpu), value


def run(area: str | None, repeat: int) -> list[Result]:
    """Build the data, then time roll-up and renderers."""
    from sqlmodel import Session

    from efa_rollout.db import get_engine
    from efa_rollout.reports.files import render_campaign, render_overview
    from efa_rollout.reports.overview import district_overview
    from efa_rollout.reports.rollup import campaign_rollup

    results = []
    start = time.perf_counter()
    municipalities = import_directory(area)
    results.append(
        Result(
            "Verzeichnis importieren (GV100AD)",
            [time.perf_counter() - start],
            note=f"{municipalities} Gemeinden",
        )
    )
    start = time.perf_counter()
    create_campaign(area)
    rows = synthesize(area)
    counts = insert_rows(rows)
    del rows
    note = ", ".join(f"{k} {v:,}".replace(",", ".") for k, v in counts.items())
    results.append(
        Result("Synthetische Kampagne einfügen", [time.perf_counter() - start], note=note)
    )

    engine = get_engine()

    def rollup() -> Any:
        with Session(engine) as session:
            return campaign_rollup(session, CAMPAIGN_ID, as_of=AS_OF)

    result, data = timed(
        "Roll-up (campaign_rollup)",
        rollup,
        repeat,
        lambda r: (
            f"{len(r.municipalities)} Gemeinden, {len(r.overdue)} überfällige Punkte, {len(r.timeline)} Tage"
        ),
    )
    results.append(result)
    for fmt, label in (("html", "HTML"), ("xlsx", "XLSX"), ("csv", "CSV"), ("md", "Markdown")):
        result, _ = timed(
            f"{label} erzeugen", lambda fmt=fmt: render_campaign(data, fmt), repeat, _size
        )
        results.append(result)

    def overview() -> Any:
        with Session(engine) as session:
            return district_overview(session, area_code=area, as_of=AS_OF)

    result, grid = timed(
        "Übersicht (district_overview)",
        overview,
        repeat,
        lambda o: f"{len(o.rows)} Gemeinden × {len(o.campaigns)} Kampagnen",
    )
    results.append(result)
    for fmt, label in (("html", "HTML"), ("xlsx", "XLSX")):
        result, _ = timed(
            f"Übersicht {label}", lambda fmt=fmt: render_overview(grid, fmt), repeat, _size
        )
        results.append(result)
    return results


def _size(content: bytes) -> str:
    return f"{len(content) / 1e6:.1f} MB"


def print_table(results: list[Result], area: str | None) -> None:
    """The figures as a Markdown table."""
    print(
        f"\nBerichte für {'alle Gemeinden Deutschlands' if not area else 'Gebiet ' + area} – Stichtag {AS_OF:%Y-%m-%d}\n"
    )
    print(
        "| Schritt | bester Lauf (s) | Median (s) | CPU bester (s) | Peak tracemalloc (MB) | Ergebnis |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for r in results:
        peak = f"{r.peak_mb:.0f}" if r.peak_mb is not None else "–"
        cpu = f"{min(r.cpu):.3f}" if r.cpu else "–"
        print(f"| {r.step} | {r.best:.3f} | {r.median:.3f} | {cpu} | {peak} | {r.note} |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nPeak RSS des Prozesses (getrusage): {rss:.0f} MB · Python {sys.version.split()[0]}")


def main() -> None:
    """Parse arguments, run in a temporary data folder (or --keep DIR), print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--area", help="Nur dieses Gebiet (Landes- oder Kreisschlüssel)")
    parser.add_argument("--repeat", type=int, default=3, help="Wiederholungen je Schritt")
    parser.add_argument("--keep", type=Path, help="Datenordner behalten (statt temporär)")
    args = parser.parse_args()
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="efa-bench-"))
    if args.keep and data_dir.exists():
        shutil.rmtree(data_dir)
    use_data_dir(data_dir)
    try:
        print_table(run(args.area, args.repeat), args.area)
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    main()
