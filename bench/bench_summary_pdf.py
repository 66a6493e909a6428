"""The summary PDF: fpdf2's write_html over the shared template next to Chromium's print.

Run: `.venv/bin/python bench/bench_summary_pdf.py [RUNS]`. Prints min/median per PDF and its
size, for a summary of three municipalities (the eWA test fixture's data); the Chromium figure
only where a chromium executable is on PATH (efa_rollout.reports.pdf, as the one-pager uses).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import date

from efa_rollout.services.summary_document import render_html, render_pdf

DATA = {
    "campaign": {
        "id": "ewa-ostalbkreis",
        "title": "eWA – elektronische Wohnsitzanmeldung",
        "service": "eWA",
        "area_name": "Ostalbkreis",
        "description": "Bürgerinnen und Bürger melden ihren neuen Wohnsitz vollständig online an. Für die Aktivierung zum vereinbarten Stichtag reicht die Roll-in-Organisation den ausgefüllten Anbindungsfragebogen ein; zuvor müssen die technischen und organisatorischen Voraussetzungen erfüllt sein.",
    },
    "go_live": "Freitag, 01.08.2025",
    "collection_deadline": "Freitag, 09.05.2025",
    "dates": [
        {
            "iso": "2025-05-09",
            "date": "Freitag, 09.05.2025",
            "label": "Rückmeldefrist der Informationserhebung",
        },
        {"iso": "2025-07-11", "date": "Freitag, 11.07.2025", "label": "Schulung"},
        {"iso": "2025-08-01", "date": "Freitag, 01.08.2025", "label": "Go-Live"},
        {"iso": "2025-08-29", "date": "Freitag, 29.08.2025", "label": "Ende der Nachbetreuung"},
    ],
    "counts": {"total": 3, "submitted": 2, "started": 1, "missing": 0},
    "municipalities": [
        {
            "ags": "08136088",
            "name": "Gemeinde Aalen",
            "phase": "Vorbereitung",
            "answers": "eingereicht",
            "ready": True,
            "pilot": False,
        },
        {
            "ags": "08136010",
            "name": "Gemeinde Bopfingen",
            "phase": "Vorbereitung",
            "answers": "eingereicht",
            "ready": True,
            "pilot": True,
        },
        {
            "ags": "08136019",
            "name": "Gemeinde Essingen",
            "phase": "Vorbereitung",
            "answers": "begonnen, noch nicht eingereicht",
            "ready": False,
            "pilot": False,
        },
    ],
    "key_fields": [
        "Projektleitung",
        "Funktionspostfach der Meldebehörde",
        "Eingesetzte Meldesoftware",
        "Ist das eWA-Modul bzw. die Lizenz (XMeld, XPassAusweis) bestellt?",
        "Gewünschter Aktivierungsstichtag",
    ],
    "key_rows": [
        {
            "name": "Gemeinde Aalen",
            "values": [
                "Frau Anna Muster, a.muster@gemeinde.example",
                "meldeamt-a@gemeinde.example",
                "OK.EWO",
                "ja",
                "15.07.2025",
            ],
        },
        {
            "name": "Gemeinde Bopfingen",
            "values": [
                "Bernd Bopp, bernd.bopp@bopfingen.example",
                "meldeamt-b@gemeinde.example",
                "Andere Meldesoftware",
                "nein",
                "15.07.2025",
            ],
        },
    ],
    "open_points": [
        {"name": "Gemeinde Aalen", "text": "Wer schult <Vertretung> & Team?", "missing": []},
        {"name": "Gemeinde Essingen", "text": "", "missing": ["Rückmeldung zum Fragebogen"]},
    ],
    "next_steps": [
        {"title": "Interesse bekundet", "owner": "Gemeinde", "due": "09.05.2025", "note": ""},
        {
            "title": "Rollen und Funktionspostfach benannt",
            "owner": "Gemeinde",
            "due": "23.05.2025",
            "note": "",
        },
        {"title": "eWA-Modul bestellt", "owner": "Gemeinde", "due": "23.05.2025", "note": ""},
        {
            "title": "DVDV-Eintrag und OSCI-Zertifikat erledigt",
            "owner": "Gemeinde",
            "due": "20.06.2025",
            "note": "",
        },
        {
            "title": "Datenschutzbeauftragte informiert",
            "owner": "Gemeinde",
            "due": "20.06.2025",
            "note": "",
        },
        {
            "title": "Zuständigkeit für die Nachricht 1704 geregelt",
            "owner": "Gemeinde",
            "due": "04.07.2025",
            "note": "",
        },
        {"title": "Schulung durchgeführt", "owner": "Gemeinde", "due": "11.07.2025", "note": ""},
        {
            "title": "First-Level-Support eingerichtet",
            "owner": "Gemeinde",
            "due": "18.07.2025",
            "note": "",
        },
        {"title": "Aktivierung bestätigt", "owner": "Komm.ONE", "due": "25.07.2025", "note": ""},
        {"title": "Vortest durchgeführt", "owner": "Gemeinde", "due": "25.07.2025", "note": ""},
        {
            "title": "Ablauf für die Müllveranlagung festgelegt",
            "owner": "Gemeinde",
            "due": "01.08.2025",
            "note": "",
        },
        {
            "title": "Bekanntmachung auf Website und im Amtsblatt",
            "owner": "Gemeinde",
            "due": "01.08.2025",
            "note": "empfohlen",
        },
        {
            "title": "Nachbetreuung: erste Fälle, Ablehnungsquote, Supportfälle",
            "owner": "Gemeinde",
            "due": "29.08.2025",
            "note": "empfohlen",
        },
    ],
    "coordinator": {
        "name": "Erika Mustermann",
        "function": "E-Government-Koordinatorin",
        "office": "Landratsamt Ostalbkreis",
        "department": "Stabsstelle Digitalisierung",
        "address": "Stuttgarter Straße 41, 73430 Aalen",
        "phone": "07361 503-0",
        "email": "egov-koordination@ostalbkreis.example",
    },
}


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
