"""Charts as inline SVG (matplotlib, Agg backend): the burn-up and the stage bars."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from html import escape
from typing import Any

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
_ID = re.compile(r'\bid="([^"]+)"')


def burn_up_svg(
    rollup: CampaignRollup, *, chart_id: str = "burnup", size: tuple[float, float] = (9, 3.8)
) -> str | None:
    """A stacked area chart of enrolments per stage per day (latest stage at the bottom)."""
    if not rollup.timeline:
        return None
    plt, dates = _pyplot()
    ticker = _ticker()
    days = [point.day for point in rollup.timeline]
    order = [s for s in rollup.stage_order if any(p.stages.get(s) for p in rollup.timeline)]
    bottom_up = list(reversed(order))
    series = [[p.stages.get(stage, 0) for p in rollup.timeline] for stage in bottom_up]
    labels = [rollup.stages[s].label if s in rollup.stages else s for s in bottom_up]
    colours = [_colour(rollup.stage_order, s) for s in bottom_up]
    fig, ax = plt.subplots(figsize=size)
    ax.stackplot(days, *series, labels=labels, colors=colours, step="post", linewidth=0)
    ax.set_ylabel("Gemeinden")
    marks = [day for day, _ in key_date_marks(rollup)]
    ax.set_xlim(days[0], max([days[-1], *marks]))  # dates ahead show as marks in the empty future
    ax.set_ylim(0, max(1, max(sum(col) for col in zip(*series, strict=True))))
    ax.xaxis.set_major_formatter(dates.DateFormatter("%d.%m.%y"))
    ax.xaxis.set_major_locator(dates.AutoDateLocator(maxticks=8))
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.grid(axis="y", color="#e4e7eb", linewidth=0.8)
    _tidy(ax)
    _marks(ax, rollup, days[0], max([days[-1], *marks]))
    handles, names = ax.get_legend_handles_labels()
    ax.legend(
        handles[::-1],
        names[::-1],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        ncol=min(4, len(names)),
        frameon=False,
    )
    return _svg(fig, chart_id, "Verlauf: Gemeinden je Stufe am Ende jedes Tages")


def key_date_marks(rollup: CampaignRollup) -> list[tuple[Any, str]]:
    """(day, label) of the dates drawn into the burn-up: go-live, mandatory from, pilot dates."""
    marks = []
    for key in rollup.key_dates:
        if key.key in ("live_since", "mandatory_since", "silent_since") and key.planned:
            word = {"live_since": "Go-Live", "mandatory_since": "verpflichtend"}.get(
                key.key, "Silent Go-Live"
            )
            marks.append((key.planned, f"{word} {key.planned:%d.%m.%Y}"))
    if not any(k.key == "live_since" for k in rollup.key_dates):
        marks.append((rollup.go_live, f"Go-Live {rollup.go_live:%d.%m.%Y}"))
    return marks


def _marks(ax: Any, rollup: CampaignRollup, first: Any, last: Any) -> None:
    """Dashed vertical lines with a label at each key date inside the chart's range."""
    top = ax.get_ylim()[1]
    for day, label in key_date_marks(rollup):
        if first <= day <= last:
            ax.axvline(day, color="#1f2933", linestyle="--", linewidth=1)
            ax.text(day, top, f"{label} ", rotation=90, va="top", ha="right", fontsize=8)


def stage_bars_svg(rollup: CampaignRollup, *, chart_id: str = "stages") -> str:
    """Horizontal bars: active municipalities per stage, then paused and not applicable."""
    plt, _ = _pyplot()
    ticker = _ticker()
    keys = [*rollup.stage_order, "paused", "not_applicable"]
    summaries = [*rollup.stages.values(), rollup.paused, rollup.not_applicable]
    labels = [s.label for s in summaries]
    counts = [s.count for s in summaries]
    colours = [OTHER_COLOURS.get(k) or _colour(rollup.stage_order, k) for k in keys]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(keys) + 0.6))
    bars = ax.barh(range(len(keys)), counts, color=colours, edgecolor="#52606d", linewidth=0.4)
    ax.set_yticks(range(len(keys)), labels)
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[_count_text(c, rollup.total) for c in counts], padding=4)
    ax.set_xlim(0, max(1, *counts) * 1.25)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("Gemeinden")
    _tidy(ax)
    return _svg(fig, chart_id, "Gemeinden je Stufe")


def live_bars_svg(rollups: Sequence[CampaignRollup], *, chart_id: str = "live") -> str:
    """Stacked horizontal bars per campaign: live, not yet live, resting."""
    plt, _ = _pyplot()
    labels = [r.service for r in rollups]
    live, waiting, resting = [], [], []
    for r in rollups:
        rest = sum(1 for m in r.municipalities if m.status != "active")
        on = sum(1 for m in r.municipalities if m.status == "active" and m.live_since)
        live.append(on)
        resting.append(rest)
        waiting.append(len(r.municipalities) - on - rest)
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(rollups) + 0.8))
    left = [0] * len(rollups)
    for values, colour, ink, name in (
        (live, "#147d64", "#ffffff", "in Betrieb"),
        (waiting, "#9fb3c8", "#1f2933", "noch nicht in Betrieb"),
        (resting, "#cfcfcf", "#1f2933", "ruhend / nicht zutreffend"),
    ):
        bars = ax.barh(
            labels, values, left=left, color=colour, label=name, edgecolor="#52606d", linewidth=0.4
        )
        texts = [str(v) if v else "" for v in values]
        ax.bar_label(bars, labels=texts, label_type="center", color=ink)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("Gemeinden")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3, frameon=False)
    _tidy(ax)
    return _svg(fig, chart_id, "Gemeinden je Dienst: in Betrieb, noch nicht in Betrieb, ruhend")


def _count_text(count: int, total: int) -> str:
    share = count / total * 100 if total else 0
    return f"{count} ({share:.0f} %)".replace(".", ",")


def _colour(order: Sequence[str], stage: str) -> str:
    """The stage's colour by its place in the pipeline."""
    from efa_rollout.domain.stages import Stage

    pipeline = [s.value for s in Stage.pipeline()]
    index = pipeline.index(stage) if stage in pipeline else len(order)
    return STAGE_COLOURS[min(index, len(STAGE_COLOURS) - 1)]


def _pyplot() -> tuple[Any, Any]:
    """matplotlib's pyplot and dates on the Agg backend, with text kept as SVG text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as dates
    import matplotlib.pyplot as plt

    matplotlib.rcParams.update(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "efa-rollout",
            "font.family": "sans-serif",
            "font.size": 10,
        }
    )
    return plt, dates


def _ticker() -> Any:
    import matplotlib.ticker as ticker

    return ticker


def _tidy(ax: Any) -> None:
    """No top and right frame lines."""
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _svg(fig: Any, chart_id: str, label: str) -> str:
    """The figure as an <svg> element with ids unique to CHART_ID, sized to its container."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    for old in set(_ID.findall(svg)):
        new = f"{chart_id}-{old}"
        svg = svg.replace(f'id="{old}"', f'id="{new}"').replace(f"#{old})", f"#{new})")
        svg = svg.replace(f'href="#{old}"', f'href="#{new}"')
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', r"<svg \1", svg, count=1)
    head = f'<svg role="img" aria-label="{escape(label)}" class="chart" id="{chart_id}" '
    return svg.replace("<svg ", head, 1)
