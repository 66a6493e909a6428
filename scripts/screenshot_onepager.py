"""Screenshots of the committee one-pager (HTML, and the PDF's first page) and the history view.

    .venv/bin/python scripts/screenshot_onepager.py [--as-of 2024-08-02]

Runs the demo's timeline without Prefect (tests/history_support.py) in a temporary data folder,
writes the ViBa BW one-pager as HTML and PDF and the status report, and shoots them with headless
Chromium into docs/screenshots/ (onepager.png, onepager-pdf.png via pdftoppm, history.png: the
report's "Geschichte je Gemeinde" with the first municipalities opened).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHOTS = REPO_ROOT / "docs" / "screenshots"
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from screenshot_report import screenshot  # noqa: E402

#: Shows only the history section, with the first three municipalities opened.
HISTORY_ONLY = """<style>
main > section:not(#geschichte), main > header, nav.toc { display: none; }
</style></head>"""


def main() -> None:
    """Build the pages and write the screenshots."""
    parser = argparse.ArgumentParser(description="One-Pager und Geschichte fotografieren.")
    parser.add_argument("--as-of", default="2024-08-02", help="Stichtag (JJJJ-MM-TT)")
    args = parser.parse_args()
    day = date.fromisoformat(args.as_of)
    with tempfile.TemporaryDirectory(prefix="efa-onepager-") as tmp:
        folder = Path(tmp)
        os.environ["EFA_DATA_DIR"] = str(folder / "data")
        os.chdir(folder)
        from efa_rollout.demo.scenario import VIBA
        from efa_rollout.reports import write_report
        from tests.history_support import moment, run_timeline

        run_timeline(folder / "data")
        as_of = moment(day)
        html = write_report(VIBA, fmt="onepager-html", out=folder / "onepager.html", as_of=as_of)
        pdf = write_report(VIBA, fmt="onepager-pdf", out=folder / "onepager.pdf", as_of=as_of)
        report = write_report(VIBA, fmt="html", out=folder / "bericht.html", as_of=as_of)
        print(screenshot(html, SHOTS / "onepager.png", width=1100, height=1500))
        if shutil.which("pdftoppm"):
            stem = folder / "page"
            subprocess.run(
                ["pdftoppm", "-png", "-r", "100", "-f", "1", "-l", "1", str(pdf), str(stem)],
                check=True,
            )
            page = next(folder.glob("page*.png"))
            shutil.copy(page, SHOTS / "onepager-pdf.png")
            print(SHOTS / "onepager-pdf.png")
        else:  # say so: a silently stale onepager-pdf.png would pass for a new one
            print("skipped onepager-pdf.png: pdftoppm missing (apt-get install poppler-utils)")
        text = report.read_text(encoding="utf-8").replace("</head>", HISTORY_ONLY, 1)
        text = text.replace("<details>", "<details open>", 3)
        history = folder / "geschichte.html"
        history.write_text(text, encoding="utf-8")
        print(screenshot(history, SHOTS / "history.png", width=1200, height=1600))


if __name__ == "__main__":
    main()
