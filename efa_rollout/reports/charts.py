"""Charts as inline SVG: the burn-up and the bars, from templates/reports/charts/*.svg.j2.

The geometry (scales, ticks, bar widths, the burn-up's step paths) is computed here in plain
Python; the templates write the elements and every word a reader sees, autoescaped. No plotting
library: importing one cost half a second of every `efa report`. The output is deterministic
(ids derive from ``chart_id``), its text is real SVG text, and each chart is an image with a
title and a description that says in words what it shows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from efa_rollout import texts
from efa_rollout.reports.model import CampaignRollup

#: One colour per pipeline position: light for early stages, dark green for the last ones.
STAGE_COLOURS = [
    "#e4e7eb",
    "#9fb3c8",
    "#486581",
    "#f7c948",
    "#de911d",
    "#65d6ad",
    "#27ab83",
    "#147d64",
    "#014d40",
]
OTHER_COLOURS = {"paused": "#9e9e9e", "not_applicable": "#cfcfcf"}
#: Text on a bar of this colour (the dark ones take white).
INK_ON = {"#147d64": "#ffffff", "#486581": "#ffffff", "#014d40": "#ffffff"}
INK = "#1f2933"
#: The burn-up's marks, by the key date they stand for ({day} filled in).
MARK_WORDS = texts.table("report.chart_mark")
#: The three parts of each campaign's bar in the district one-pager.
LIVE_PARTS = texts.table("report.chart_live")


# -- scales and ticks -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scale:
    """A linear map from data values (LOW to HIGH) to drawing coordinates (START to END)."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1
        return _r(self.start + (value - self.low) / span * (self.end - self.start))


def _r(value: float) -> float:
    """A coordinate to a tenth of a unit (enough on any screen or paper, short to write)."""
    return round(value, 1)


def integer_ticks(top: int, *, most: int = 8) -> list[int]:
    """0, s, 2s, … up to TOP (at least 1): s the smallest of 1, 2, 5 × 10^k (and 25 × 10^k)
    giving at most MOST steps. The axis itself ends at TOP, as the data does."""
    top = max(top, 1)
    for magnitude in (10**k for k in range(16)):
        quarter = [5 * magnitude // 2] if magnitude >= 10 else []
        for step in (magnitude, 2 * magnitude, *quarter, 5 * magnitude):
            if top // step <= most:
                return list(range(0, top + 1, step))
    raise ValueError(f"no ticks for {top}")


def _month_starts(first: date, last: date, every: int) -> Iterator[date]:
    year, month = first.year, first.month
    while True:
        day = date(year, month, 1)
        if day > last:
            return
        if day >= first and (month - 1) % every == 0:
            yield day
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _tick_candidates(first: date, last: date) -> Iterator[list[date]]:
    """Tick dates inside [FIRST, LAST], finest calendar step first."""
    span = (last - first).days
    if span <= 400:
        days = [first + timedelta(days=n) for n in range(span + 1)]
        yield days
        yield days[::2]
        yield [d for d in days if d.weekday() == 0]  # Mondays
        yield [d for d in days if d.day in (1, 15)]
    for every in (1, 2, 3, 6, 12):
        yield list(_month_starts(first, last, every))
    for years in (2, 5, 10, 20, 50, 100):
        yield [date(y, 1, 1) for y in range(first.year, last.year + 1) if y % years == 0]


def date_ticks(first: date, last: date, *, most: int = 8) -> list[date]:
    """The days inside [FIRST, LAST] that get a tick: every day, every second, Mondays, the 1st
    and 15th, the 1st of every 1, 2, 3, 6, 12 months, …: the finest step with at most MOST
    ticks. Where that step leaves fewer than two in the range, every n-th of the step before."""
    previous: list[date] = []
    for ticks in _tick_candidates(first, last):
        if len(ticks) <= most:
            if len(ticks) >= 2 or not previous:
                return ticks
            break
        previous = ticks
    return previous[:: math.ceil(len(previous) / most)]


def date_label(day: date) -> str:
    """A tick's label: 01.07.24."""
    return f"{day:%d.%m.%y}"


def text_width(text: str, size: float) -> float:
    """About how wide TEXT is in a sans-serif face of SIZE (DejaVu Sans and Arial are near)."""
    narrow, wide = "fijlrtI.,:;!|'()[] ", "mwMW%"
    em = 0.0
    for char in text:
        if char in narrow:
            em += 0.32
        elif char in wide:
            em += 0.9
        elif char.isupper() or char.isdigit():
            em += 0.68
        else:
            em += 0.6
    return em * size


# -- what the templates draw ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    """A tick on an axis: where, and its label."""

    at: float
    label: str


@dataclass(frozen=True, slots=True)
class LegendEntry:
    """A swatch and its name, at X, Y (the swatch's top left)."""

    x: float
    y: float
    size: float
    colour: str
    label: str

    @property
    def text_x(self) -> float:
        return _r(self.x + self.size * 1.4)

    @property
    def text_y(self) -> float:
        return _r(self.y + self.size / 2)


@dataclass(frozen=True, slots=True)
class Bar:
    """A rectangle of COUNT, its colour and the text written on or beside it."""

    x: float
    y: float
    width: float
    height: float
    colour: str
    count: int
    label: str = ""
    text: str = ""
    text_x: float = 0
    ink: str = INK

    @property
    def text_y(self) -> float:
        return _r(self.y + self.height / 2)


@dataclass(frozen=True, slots=True)
class Mark:
    """A dashed vertical line at X with its label."""

    x: float
    label: str
    top: float

    @property
    def label_x(self) -> float:
        """The label reads upwards, ending at the top, just left of the line."""
        return _r(self.x - 4)

    @property
    def label_y(self) -> float:
        return _r(self.top + 2)


@dataclass(slots=True)
class Frame:
    """The plot area, its axes and what a chart of any kind shares."""

    chart_id: str
    width: float
    height: float
    left: float
    top: float
    right: float
    bottom: float
    font: float
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    legend: list[LegendEntry] = field(default_factory=list)

    @property
    def mark_font(self) -> float:
        return _r(self.font * 0.85)

    @property
    def tick_label_y(self) -> float:
        """The baseline of the x ticks' labels."""
        return _r(self.bottom + self.font * 1.4)

    @property
    def tick_label_x(self) -> float:
        """Where the y ticks' labels end."""
        return _r(self.left - 7)

    @property
    def row_label_x(self) -> float:
        """Where the bars' row labels end."""
        return _r(self.left - 8)

    @property
    def x_title(self) -> tuple[float, float]:
        """The middle of the x axis' title under the tick labels."""
        return _r((self.left + self.right) / 2), _r(self.bottom + self.font * 2.9)

    @property
    def y_title(self) -> tuple[float, float]:
        """The middle of the y axis' title (turned to read upwards) left of the tick labels."""
        return _r(self.font), _r((self.top + self.bottom) / 2)


def _legend(
    entries: Sequence[tuple[str, str]], *, left: float, width: float, top: float, font: float
) -> tuple[list[LegendEntry], float]:
    """ENTRIES (colour, label) in rows of up to four columns below TOP; the legend's height."""
    columns = max(1, min(4, len(entries)))
    column_width = width / columns
    row = font * 1.7
    legend = [
        LegendEntry(
            x=round(left + (i % columns) * column_width, 1),
            y=round(top + (i // columns) * row, 1),
            size=font,
            colour=colour,
            label=label,
        )
        for i, (colour, label) in enumerate(entries)
    ]
    rows = math.ceil(len(entries) / columns)
    return legend, rows * row


def _render(template: str, **context: Any) -> str:
    from efa_rollout.reports.html import environment  # html imports this module

    return environment().get_template(f"charts/{template}").render(**context).strip()


def _count_text(count: int, total: int) -> str:
    share = count / total * 100 if total else 0
    return f"{count} ({share:.0f} %)"


def _colour(order: Sequence[str], stage: str) -> str:
    """The stage's colour by its place in the pipeline."""
    from efa_rollout.domain.stages import Stage

    pipeline = [s.value for s in Stage.pipeline()]
    index = pipeline.index(stage) if stage in pipeline else len(order)
    return STAGE_COLOURS[min(index, len(STAGE_COLOURS) - 1)]


# -- the burn-up ------------------------------------------------------------------------------


def key_date_marks(rollup: CampaignRollup) -> list[tuple[date, str]]:
    """(day, label) of the dates drawn into the burn-up: go-live, mandatory from, silent go-live."""
    marks = []
    for key in rollup.key_dates:
        if key.key in ("live_since", "mandatory_since", "silent_since") and key.planned:
            marks.append((key.planned, MARK_WORDS[key.key].format(day=f"{key.planned:%d.%m.%Y}")))
    if not any(k.key == "live_since" for k in rollup.key_dates):
        marks.append(
            (rollup.go_live, MARK_WORDS["live_since"].format(day=f"{rollup.go_live:%d.%m.%Y}"))
        )
    return marks


def _step_path(xs: Sequence[float], upper: Sequence[float], lower: Sequence[float]) -> str:
    """The outline of a band that steps at each XS: along UPPER left to right, back along LOWER.
    XS has one more entry than the values (the end of the last day)."""

    def edge(values: Sequence[float], *, forward: bool) -> list[tuple[float, float]]:
        points: list[tuple[float, float]] = []
        for i in range(len(values)) if forward else reversed(range(len(values))):
            start, end = (xs[i], xs[i + 1]) if forward else (xs[i + 1], xs[i])
            if points and points[-1][1] == values[i]:
                points[-1] = (end, values[i])  # the same height goes on: stretch the segment
            else:
                points += [(start, values[i]), (end, values[i])]
        return points

    points = edge(upper, forward=True) + edge(lower, forward=False)
    return "M" + "L".join(f"{x:g},{y:g}" for x, y in points) + "Z"


def burn_up_svg(
    rollup: CampaignRollup,
    *,
    chart_id: str = "burnup",
    size: tuple[float, float] = (900, 380),
    font: float = 12,
) -> str | None:
    """A stacked area chart of enrolments per stage at the end of each day (latest stage at the
    bottom), with the key dates as dashed lines; SIZE is width × height of the plot and its axes
    (the legend comes below)."""
    if not rollup.timeline:
        return None
    width, height = size
    points = rollup.timeline
    order = [s for s in rollup.stage_order if any(p.stages.get(s) for p in points)]
    labels = {s: rollup.stages[s].label if s in rollup.stages else s for s in order}
    first, last = points[0].day, points[-1].day + timedelta(days=1)  # the last day's end
    marks = key_date_marks(rollup)
    end = max([last, *(day for day, _ in marks)])
    totals = [sum(p.stages.get(s, 0) for s in order) for p in points]
    largest = max(1, *totals)
    y_values = integer_ticks(largest, most=max(3, int(height // 40)))
    y_label_width = max(text_width(str(v), font) for v in y_values)
    left = round(y_label_width + font * 2.6, 1)
    right = width - max(12, text_width("00.00.00", font) / 2 + 2)  # room for a tick's label
    frame = Frame(chart_id, width, 0, left, 8, _r(right), _r(height - font * 2.2), font)
    x = Scale(0, (end - first).days, frame.left, frame.right)
    y = Scale(0, largest, frame.bottom, frame.top)
    most = max(2, int((frame.right - frame.left) // (text_width("00.00.00", font) * 1.8)))
    frame.x_ticks = [
        Tick(x((day - first).days), date_label(day)) for day in date_ticks(first, end, most=most)
    ]
    frame.y_ticks = [Tick(y(v), str(v)) for v in y_values]
    xs = [x((p.day - first).days) for p in points] + [x((last - first).days)]
    bands = []
    below = [0] * len(points)
    for stage in reversed(order):  # the latest stage at the bottom
        above = [b + p.stages.get(stage, 0) for b, p in zip(below, points, strict=True)]
        path = _step_path(xs, [y(v) for v in above], [y(v) for v in below])
        bands.append({"path": path, "colour": _colour(rollup.stage_order, stage)})
        below = above
    frame.legend, legend_height = _legend(
        [(_colour(rollup.stage_order, s), labels[s]) for s in order],
        left=frame.left,
        width=frame.right - frame.left,
        top=height + font * 0.4,
        font=font,
    )
    frame.height = round(height + font * 0.4 + legend_height, 1)
    shown = [
        Mark(x((day - first).days), label, frame.top) for day, label in marks if first <= day <= end
    ]
    latest = [(labels[s], points[-1].stages.get(s, 0)) for s in order]
    return _render(
        "burn_up.svg.j2",
        f=frame,
        bands=bands,
        marks=shown,
        first=points[0].day,
        last=points[-1].day,
        latest=latest,
    )


# -- the bars ---------------------------------------------------------------------------------


def _bar_frame(
    chart_id: str, labels: Sequence[str], top: int, *, width: float, font: float, right: float
) -> tuple[Frame, Scale, float]:
    """The frame of horizontal bars with LABELS on the left, TOP the largest value; the value
    scale and the height of a row."""
    row = round(font * 2.3, 1)
    left = round(max(text_width(label, font) for label in labels) + font, 1)
    bottom = 6 + row * len(labels)
    frame = Frame(
        chart_id, width, _r(bottom + font * 3.6), left, 6, _r(width - right), _r(bottom), font
    )
    top = max(1, top)
    values = integer_ticks(top, most=max(3, int((frame.right - frame.left) // (font * 5))))
    scale = Scale(0, top, frame.left, frame.right)
    frame.x_ticks = [Tick(scale(v), str(v)) for v in values]
    return frame, scale, row


def stage_bars_svg(
    rollup: CampaignRollup, *, chart_id: str = "stages", width: float = 900, font: float = 13
) -> str:
    """Horizontal bars: active municipalities per stage, then paused and not applicable, each
    with its count and share of all municipalities."""
    keys = [*rollup.stage_order, "paused", "not_applicable"]
    summaries = [*rollup.stages.values(), rollup.paused, rollup.not_applicable]
    labels = [s.label for s in summaries]
    counts = [s.count for s in summaries]
    notes = [_count_text(c, rollup.total) for c in counts]
    right = max(text_width(t, font) for t in notes) + font
    frame, scale, row = _bar_frame(
        chart_id, labels, max(counts, default=0), width=width, font=font, right=right
    )
    bars = []
    for i, (key, summary, text) in enumerate(zip(keys, summaries, notes, strict=True)):
        end = scale(summary.count)
        bars.append(
            Bar(
                x=frame.left,
                y=round(frame.top + i * row + row * 0.15, 1),
                width=round(end - frame.left, 1),
                height=round(row * 0.7, 1),
                colour=OTHER_COLOURS.get(key) or _colour(rollup.stage_order, key),
                count=summary.count,
                label=summary.label,
                text=text,
                text_x=round(end + font * 0.4, 1),
            )
        )
    return _render("stage_bars.svg.j2", f=frame, bars=bars, row=row, total=rollup.total)


def live_bars_svg(
    rollups: Sequence[CampaignRollup],
    *,
    chart_id: str = "live",
    width: float = 900,
    font: float = 13,
) -> str:
    """Stacked horizontal bars per campaign: live, not yet live, resting."""
    rows = []
    for r in rollups:
        rest = sum(1 for m in r.municipalities if m.status != "active")
        on = sum(1 for m in r.municipalities if m.status == "active" and m.live_since)
        rows.append((r.service, (on, len(r.municipalities) - on - rest, rest)))
    parts = (("live", "#147d64"), ("waiting", "#9fb3c8"), ("resting", "#cfcfcf"))
    labels = [service for service, _ in rows] or [""]
    largest = max((sum(values) for _, values in rows), default=0)
    frame, scale, row = _bar_frame(chart_id, labels, largest, width=width, font=font, right=16)
    frame.legend, legend_height = _legend(
        [(colour, LIVE_PARTS[key]) for key, colour in parts],
        left=frame.left,
        width=frame.right - frame.left,
        top=frame.height,
        font=font,
    )
    frame.height = round(frame.height + legend_height, 1)
    stacks = []
    for i, (service, values) in enumerate(rows):
        start, bars = 0, []
        for (key, colour), value in zip(parts, values, strict=True):
            x0, x1 = scale(start), scale(start + value)
            bars.append(
                Bar(
                    x=x0,
                    y=round(frame.top + i * row + row * 0.15, 1),
                    width=round(x1 - x0, 1),
                    height=round(row * 0.7, 1),
                    colour=colour,
                    count=value,
                    label=LIVE_PARTS[key],
                    text=str(value) if value else "",
                    text_x=round((x0 + x1) / 2, 1),
                    ink=INK_ON.get(colour, INK),
                )
            )
            start += value
        stacks.append({"service": service, "bars": bars, "y": _r(frame.top + (i + 0.5) * row)})
    return _render("live_bars.svg.j2", f=frame, stacks=stacks)
