"""The summary PDF: fpdf2's write_html over the shared template next to Chromium's print.

Run: `.venv/bin/python bench/bench_summary_pdf.py [RUNS]`. Prints min/median per PDF and its
size, for a summary of three municipalities (the eWA test fixture's data, summary_pdf_data.json); the Chromium figure
only where a chromium executable is on PATH (efa_rollout.reports.pdf, as the one-pager uses).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from efa_rollout.services.summary_document import render_html, render_pdf

DATA = json.loads((Path(__file__).parent / "summary_pdf_data.json").read_text("utf-8"))


def _time(label: str, make: Callable[[], bytes], runs: int) -> None:
    make()  # warm: imports, fonts
    times, size = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        size = len(make())
        times.append(time.perf_counter() - start)
    print(
        f"{label:<28} min {min(times) * 1000:7.0f} ms  median "
        f"{statistics.median(times) * 1000:7.0f} ms  {size / 1024:6.1f} KiB"
    )


def main() -> None:
    """Time both ways."""
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    day = date(2025, 3, 3)
    _time("fpdf2 write_html", lambda: render_pdf(DATA, version=1, generated=day), runs)
    from efa_rollout.errors import UserError
    from efa_rollout.reports.pdf import html_to_pdf

    html = render_html(DATA, version=1, generated=day)
    try:
        _time("chromium --print-to-pdf", lambda: html_to_pdf(html), max(runs // 3, 1))
    except UserError as error:
        print(f"chromium: {error}")


if __name__ == "__main__":
    main()
