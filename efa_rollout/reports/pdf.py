"""HTML to PDF with headless Chromium's print engine: the PDF is the HTML's own print layout."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from efa_rollout import texts
from efa_rollout.errors import UserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    """The Chromium executable, or a German error saying how to install it."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise UserError(texts.say("report.error.no_chromium"))


def html_to_pdf(html: str, *, timeout: float = 120) -> bytes:
    """Print HTML (a whole document, no external resources) to PDF on the page size its CSS asks."""
    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="efa-pdf-") as tmp:
        source, target = Path(tmp) / "page.html", Path(tmp) / "page.pdf"
        source.write_text(html, encoding="utf-8")
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={target}",
            source.as_uri(),
        ]
        try:
            subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            seconds = f"{timeout:.0f}"
            raise UserError(texts.say("report.error.pdf_timeout", seconds=seconds)) from None
        if not target.exists() or target.stat().st_size == 0:
            raise UserError(texts.say("report.error.no_pdf"))
        return target.read_bytes()
