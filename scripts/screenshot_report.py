"""Screenshot an HTML report with headless Chromium (to look at it as a person would).

    .venv/bin/python scripts/screenshot_report.py [REPORT.html] [--out PNG] [--width 1200 --height 2000]

Without REPORT.html, builds a synthetic ViBa BW campaign for the Ostalbkreis (42 municipalities,
from the official directory) in a temporary data folder, writes its report and shoots that;
the default PNG is docs/screenshots/report.png.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PNG = REPO_ROOT / "docs" / "screenshots" / "report.png"


def chromium() -> str:
    """The Chromium executable (Debian: apt-get install chromium)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("Chromium fehlt: apt-get update && apt-get install -y chromium")


def screenshot(html: Path, png: Path, *, width: int = 1200, height: int = 2000) -> Path:
    """Render HTML (a file) with headless Chromium into PNG; return PNG."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="efa-chromium-") as profile:
        command = [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png.resolve()}",
            f"--window-size={width},{height}",
            html.resolve().as_uri(),
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    if not png.exists():
        raise RuntimeError(f"Chromium hat kein Bild geschrieben: {png}")
    return png


def sample_report(folder: Path) -> Path:
    """A synthetic Ostalbkreis campaign's HTML report, built in FOLDER."""
    sys.path.insert(0, str(REPO_ROOT))
    from bench.bench_reports import AS_OF, CAMPAIGN_ID, build_synthetic, use_data_dir

    use_data_dir(folder / "data")
    build_synthetic("08136")
    from efa_rollout.reports import write_report

    return write_report(CAMPAIGN_ID, fmt="html", out=folder / "bericht.html", as_of=AS_OF)


def main() -> None:
    """Parse arguments and write the screenshot."""
    parser = argparse.ArgumentParser(
        description="HTML-Bericht mit headless Chromium fotografieren."
    )
    parser.add_argument("html", nargs="?", type=Path, help="HTML-Datei (Standard: Beispielbericht)")
    parser.add_argument("--out", type=Path, default=DEFAULT_PNG, help="Ziel-PNG")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="efa-report-") as folder:
        html = args.html or sample_report(Path(folder))
        print(screenshot(html, args.out, width=args.width, height=args.height))


if __name__ == "__main__":
    main()
