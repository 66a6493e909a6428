"""The demo's scenario: the district, the two campaigns and the simulated timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from efa_rollout import PROJECT_ROOT
from efa_rollout.settings import get_settings

REFERENCE = PROJECT_ROOT / "reference"


DISTRICT = "08136"


SIMULATION = "Simulation (Demo)"


VIBA = "viba-bw-ostalbkreis"


EWA = "ewa-ostalbkreis"


PILOTS = ("08136021", "08136033")  # Essingen, Hüttlingen


@dataclass(frozen=True)
class Step:
    """One moment on the simulated timeline and what happens then."""

    day: date
    title: str
    actions: tuple[str, ...]


TIMELINE: tuple[Step, ...] = (
    Step(date(2023, 4, 17), "ViBa BW: Kampagne startet", ("start:" + VIBA,)),
    Step(date(2023, 5, 15), "ViBa BW: erste Rückmeldungen", ("answer:" + VIBA + ":0.55",)),
    Step(date(2023, 5, 26), "ViBa BW: freundliche Erinnerung vor der Frist", ()),
    Step(date(2023, 6, 2), "ViBa BW: Zusammenfassung an alle", ("summary:" + VIBA,)),
    Step(date(2023, 10, 26), "ViBa BW: Pilotphase", ("tick_items:" + VIBA + ":0.3",)),
    Step(date(2023, 11, 16), "ViBa BW: Silent Go-Live der Pilotgemeinden", ()),
    Step(
        date(2024, 4, 15), "eWA: Kampagne startet", ("start:" + EWA, "tick_items:" + VIBA + ":0.6")
    ),
    Step(date(2024, 6, 3), "eWA: Rückmeldungen", ("answer:" + EWA + ":0.6",)),
    Step(date(2024, 7, 4), "eWA: freundliche Erinnerung vor der Frist", ()),
    Step(date(2024, 7, 9), "eWA: Frist abgelaufen, Zusammenfassung", ("summary:" + EWA,)),
    Step(date(2024, 8, 1), "ViBa BW: Go-Live", ("tick_items:" + EWA + ":0.5",)),
    Step(
        date(2024, 9, 16), "eWA: Checklisten werden abgearbeitet", ("tick_items:" + EWA + ":0.8",)
    ),
    Step(date(2024, 10, 1), "eWA: Go-Live (nur wo alle Pflichtpunkte erledigt sind)", ()),
    Step(
        date(2025, 1, 2),
        "ViBa BW: digitale Antragstellung verpflichtend",
        ("tick_items:" + VIBA + ":1.0",),
    ),
)


def moment(day: date) -> datetime:
    """09:00 local time on DAY (inside the sending window)."""
    return datetime.combine(day, time(9, 0), tzinfo=get_settings().zone)
