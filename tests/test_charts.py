"""The report charts (reports/charts.py, templates/reports/charts/): well-formed SVG images with a
title and description, ticks where the calendar puts them, bars as long as their counts, key
dates marked, every text escaped, the same bytes for the same data."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise

import pytest

from efa_rollout.reports.charts import (
    burn_up_svg,
    date_ticks,
    integer_ticks,
    key_date_marks,
    live_bars_svg,
    stage_bars_svg,
)
from efa_rollout.reports.model import CampaignRollup, TimelinePoint
from tests.test_report_outputs import rollup  # noqa: F401 (fixture)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str | None) -> ET.Element:
    """The chart as XML (raises on anything malformed), after checking its accessible name."""
    assert svg is not None
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    chart_id = root.get("id")
    assert root.get("aria-labelledby") == f"{chart_id}-title {chart_id}-desc"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.get("id") == f"{chart_id}-title" and title.text
    assert desc is not None and desc.get("id") == f"{chart_id}-desc" and desc.text
    return root


def texts_of(root: ET.Element, group: str) -> list[ET.Element]:
    found = root.find(f".//{SVG}g[@class='{group}']")
    assert found is not None, group
    return found.findall(f"{SVG}text")


def words(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_date_ticks_follow_the_calendar() -> None:
    # five months: a tick on the 1st of every month (and the 15th, which still fits)
    ticks = date_ticks(date(2025, 1, 10), date(2025, 6, 20), most=12)
    assert {d for d in ticks if d.day == 1} == {date(2025, m, 1) for m in range(2, 7)}
    assert all(d.day in (1, 15) for d in ticks)
    # with room for only eight: the 1st of each month, nothing else
    assert date_ticks(date(2025, 1, 10), date(2025, 6, 20), most=8) == [
        date(2025, m, 1) for m in range(2, 7)
    ]
    # two and a half years: the quarters' first days, never more than asked for
    long = date_ticks(date(2023, 6, 1), date(2025, 12, 31), most=8)
    assert len(long) <= 8 and all(d.day == 1 and d.month in (1, 7) for d in long)
    assert long[0] == date(2023, 7, 1) and long[-1] == date(2025, 7, 1)
    # a week: every day
    assert date_ticks(date(2025, 3, 3), date(2025, 3, 9), most=8) == [
        date(2025, 3, 3) + timedelta(days=n) for n in range(7)
    ]
    # a month: Mondays
    assert all(d.weekday() == 0 for d in date_ticks(date(2025, 3, 1), date(2025, 3, 31)))


def test_integer_ticks_are_round_steps_up_to_the_largest_value() -> None:
    assert integer_ticks(8) == list(range(9))
    assert integer_ticks(42) == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    assert integer_ticks(42, most=4) == [0, 10, 20, 30, 40]
    assert integer_ticks(42, most=3) == [0, 20, 40]
    assert integer_ticks(0) == [0, 1]
    assert integer_ticks(3, most=1) == [0, 2]  # never 2.5
    assert integer_ticks(10_981, most=6) == [0, 2000, 4000, 6000, 8000, 10_000]
    assert integer_ticks(120, most=5) == [0, 25, 50, 75, 100]


def test_burn_up_has_axes_legend_marks_and_a_tick_per_month(rollup: CampaignRollup) -> None:  # noqa: F811
    root = parse(burn_up_svg(rollup))
    x_ticks = texts_of(root, "x-ticks")
    days = [date(2000 + int(t.text[6:]), int(t.text[3:5]), int(t.text[:2])) for t in x_ticks]  # type: ignore[index]
    first, last = rollup.timeline[0].day, rollup.timeline[-1].day
    assert {date(2025, m, 1) for m in (3, 4, 5, 6)} <= set(days)  # 01.03.–02.06.2025
    # tick positions are linear in the date
    xs = [float(t.get("x", "")) for t in x_ticks]
    per_day = (xs[-1] - xs[0]) / (days[-1] - days[0]).days
    for x, day in zip(xs, days, strict=True):
        assert x == pytest.approx(xs[0] + (day - days[0]).days * per_day, abs=0.2)
    # the key date as a dashed line at its day, with its German label
    assert key_date_marks(rollup) == [(date(2025, 6, 2), "Go-Live 02.06.2025")]
    marks = root.find(f".//{SVG}g[@class='marks']")
    assert marks is not None
    line = marks.find(f"{SVG}path")
    assert line is not None and line.get("stroke-dasharray")
    line_x = float(re.findall(r"M([\d.]+),", line.get("d", ""))[0])
    assert line_x == pytest.approx(xs[0] + (date(2025, 6, 2) - days[0]).days * per_day, abs=0.2)
    assert "Go-Live 02.06.2025" in words(root)
    # the legend names every stage that occurs, earliest first; y axis in whole municipalities
    legend = [t.text for t in texts_of(root, "legend")]
    assert legend == [
        "Informationserhebung",
        "Zusammenfassung verteilen",
        "Checklisten-Nachverfolgung",
        "Go-Live",
    ]
    assert [t.text for t in texts_of(root, "y-ticks")] == [str(n) for n in range(9)]
    assert "Gemeinden" in words(root)
    # the highest band reaches the largest total (8 municipalities), the lowest sits on 0
    y_ticks = texts_of(root, "y-ticks")
    y0, y8 = float(y_ticks[0].get("y", "")), float(y_ticks[-1].get("y", ""))
    bands = root.find(f".//{SVG}g[@class='bands']")
    assert bands is not None
    ys = [float(y) for p in bands for y in re.findall(r",([\d.]+)", p.get("d", ""))]
    assert min(ys) == pytest.approx(y8) and max(ys) == pytest.approx(y0)
    desc = root.findtext(f"{SVG}desc") or ""
    assert f"bis {last:%d.%m.%Y}" in desc and f"vom {first:%d.%m.%Y}" in desc
    assert "Checklisten-Nachverfolgung 3" in desc and "Go-Live 02.06.2025" in desc


def test_stage_bars_are_as_long_as_their_counts(rollup: CampaignRollup) -> None:  # noqa: F811
    root = parse(stage_bars_svg(rollup))
    bars = root.find(f".//{SVG}g[@class='bars']")
    assert bars is not None
    widths = [float(r.get("width", "")) for r in bars.findall(f"{SVG}rect")]
    counts = [s.count for s in [*rollup.stages.values(), rollup.paused, rollup.not_applicable]]
    assert counts == [1, 1, 3, 1, 0, 1, 1]
    per_one = widths[counts.index(3)] / 3
    assert widths == pytest.approx([c * per_one for c in counts], abs=0.2)
    # the x axis' ticks sit where their values are
    ticks = texts_of(root, "x-ticks")
    left = float(bars.findall(f"{SVG}rect")[0].get("x", ""))
    for tick in ticks:
        assert float(tick.get("x", "")) == pytest.approx(
            left + int(tick.text or "") * per_one, abs=0.2
        )
    assert [t.text for t in texts_of(root, "counts")] == [
        "1 (12 %)",
        "1 (12 %)",
        "3 (38 %)",
        "1 (12 %)",
        "0 (0 %)",
        "1 (12 %)",
        "1 (12 %)",
    ]
    assert [t.text for t in texts_of(root, "rows")][-2:] == ["Pausiert", "Nicht zutreffend"]
    assert "Checklisten-Nachverfolgung 3 (38 %)" in (root.findtext(f"{SVG}desc") or "")


def test_every_text_is_escaped(rollup: CampaignRollup) -> None:  # noqa: F811
    nasty = 'A & <b>"B"</b> \x07'
    stages = dict(rollup.stages)
    stages["go_live"] = replace(stages["go_live"], label=nasty)
    tricky = replace(rollup, stages=stages, service=nasty)
    for svg in (burn_up_svg(tricky), stage_bars_svg(tricky), live_bars_svg([tricky, rollup])):
        assert svg is not None and "<b>" not in svg and "\x07" not in svg
        root = parse(svg)
        shown = [*words(root), root.findtext(f"{SVG}desc") or ""]
        assert any('A & <b>"B"</b>' in text for text in shown), shown


def test_live_bars_stack_each_campaign(rollup: CampaignRollup) -> None:  # noqa: F811
    root = parse(live_bars_svg([rollup], chart_id="kreis"))
    assert root.get("id") == "kreis"
    assert [t.text for t in texts_of(root, "rows")] == ["Testdienst"]
    assert [t.text for t in texts_of(root, "counts")] == ["1", "5", "2"]
    bars = root.find(f".//{SVG}g[@class='bars']")
    assert bars is not None
    rects = bars.findall(f"{SVG}rect")
    widths = [float(r.get("width", "")) for r in rects]
    assert widths == pytest.approx([widths[0], widths[0] * 5, widths[0] * 2], abs=0.2)
    # side by side: each part starts where the one before ends
    for before, after in pairwise(rects):
        end = float(before.get("x", "")) + float(before.get("width", ""))
        assert float(after.get("x", "")) == pytest.approx(end, abs=0.2)
    legend = [t.text for t in texts_of(root, "legend")]
    assert legend == ["in Betrieb", "noch nicht in Betrieb", "ruhend / nicht zutreffend"]


def test_charts_are_deterministic_with_ids_from_the_chart_id(rollup: CampaignRollup) -> None:  # noqa: F811
    one, two = burn_up_svg(rollup, chart_id="a"), burn_up_svg(rollup, chart_id="a")
    assert one == two and one is not None
    ids = re.findall(r'\bid="([^"]+)"', one)
    assert ids == ["a", "a-title", "a-desc"]
    assert stage_bars_svg(rollup, chart_id="b") == stage_bars_svg(rollup, chart_id="b")


def test_a_long_history_keeps_its_ticks_few(rollup: CampaignRollup) -> None:  # noqa: F811
    start = date(2023, 1, 1)
    timeline = [
        TimelinePoint(start + timedelta(days=n), {"information_collection": 1 + n // 100})
        for n in range(900)
    ]
    root = parse(burn_up_svg(replace(rollup, timeline=timeline)))
    labels = [t.text or "" for t in texts_of(root, "x-ticks")]
    assert 3 <= len(labels) <= 10 and all(label.startswith("01.") for label in labels)
    assert [t.text for t in texts_of(root, "y-ticks")] == [str(n) for n in range(10)]  # 9 at most


def test_one_day_is_a_band_as_wide_as_the_day(rollup: CampaignRollup) -> None:  # noqa: F811
    day = TimelinePoint(date(2025, 5, 20), {"information_collection": 2, "go_live": 1})
    root = parse(burn_up_svg(replace(rollup, timeline=[day], key_dates=[], go_live=day.day)))
    bands = root.find(f".//{SVG}g[@class='bands']")
    assert bands is not None
    outlines = [
        [tuple(map(float, xy.split(","))) for xy in p.get("d", "")[1:-1].split("L")] for p in bands
    ]
    assert len(outlines) == 2
    for outline in outlines:  # a rectangle, clockwise: top left, top right, bottom right, …
        (x0, top), (x1, top_again), (x2, bottom), (x3, bottom_again) = outline
        assert x0 == x3 < x1 == x2 and top == top_again < bottom == bottom_again
