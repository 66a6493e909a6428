"""The summary as a document: HTML from its template and the PDF laid out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from efa_rollout import TEMPLATES_DIR
from efa_rollout.domain import phrasing
from efa_rollout.domain.text import german_date

SUMMARY_DIR = TEMPLATES_DIR / "summary"


FONT_DIR = SUMMARY_DIR / "fonts"


def render_html(data: dict[str, Any], *, version: int, generated: date) -> str:
    """The summary as a standalone HTML page (autoescaped, with print CSS)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(SUMMARY_DIR)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("summary.html").render(
        **data,
        version=version,
        generated=german_date(generated),
        intro=intro_text(data),
        next_steps_text=next_steps_text(data, generated),
    )


def render_pdf(
    data: dict[str, Any], *, version: int, generated: date, created_at: datetime | None = None
) -> bytes:
    """The summary as PDF (A4; the key answers on landscape pages), fonts embedded.

    CREATED_AT (the moment the version is built) is the PDF's creation date; without it the
    date GENERATED at midnight UTC, so the same version always gives the same bytes.
    """
    moment = created_at or datetime(generated.year, generated.month, generated.day, tzinfo=UTC)
    return _SummaryPdf(data, version=version, generated=generated, created_at=moment).build()


_INTRO = (
    "Diese Zusammenfassung gibt allen beteiligten Kommunen den Stand der Informationserhebung "
    "zu {service} wieder: wer wie weit ist, die wichtigsten Angaben im Überblick, offene Punkte "
    "sowie die nächsten Schritte und die zentralen Termine. So muss niemand Informationen "
    "einzeln zusammensuchen."
)


_NEXT_STARTED = (
    "Der Go-Live war am {go_live}; die folgenden Punkte sind noch zu erledigen. Vor jeder Frist "
    "erhalten Sie eine kurze Erinnerung; erledigte Punkte haken Sie bitte im Portal ab, dann "
    "entfällt die Erinnerung dazu."
)


_NEXT = (
    "Bis zum Go-Live am {go_live} sind die folgenden Punkte zu erledigen. Vor jeder Frist "
    "erhalten Sie eine kurze Erinnerung; erledigte Punkte haken Sie bitte im Portal ab, dann "
    "entfällt die Erinnerung dazu."
)


_LATE = (
    "Kommunen, deren Rückmeldung noch aussteht, werden gebeten, den Fragebogen bis zum "
    "{deadline} über ihren persönlichen Link im Portal auszufüllen."
)


_OVERDUE = (
    "Die Rückmeldefrist ist am {deadline} abgelaufen. Kommunen, deren Rückmeldung noch "
    "aussteht, werden gebeten, den Fragebogen umgehend über ihren persönlichen Link im Portal "
    "auszufüllen."
)


def intro_text(data: dict[str, Any]) -> str:
    """The opening paragraph (shared by HTML and PDF)."""
    return _INTRO.format(service=data["campaign"]["service"])


def next_steps_text(data: dict[str, Any], today: date) -> list[str]:
    """The paragraphs of 'Was als Nächstes geschieht' as true on TODAY (HTML and PDF)."""
    started = phrasing.tense(_day(data["go_live"]), today) != phrasing.FUTURE
    paragraphs = [(_NEXT_STARTED if started else _NEXT).format(go_live=data["go_live"])]
    deadline = data["collection_deadline"]
    if data["counts"]["total"] > data["counts"]["submitted"] and deadline:
        late = _OVERDUE if _day(deadline) < today else _LATE
        paragraphs.append(late.format(deadline=deadline))
    return paragraphs


def _day(text: str) -> date:
    """The date of 'Freitag, 31.05.2023' (the summary data holds German dates)."""
    return datetime.strptime(text.rsplit(" ", 1)[-1], "%d.%m.%Y").date()


class _SummaryPdf:
    """Lays out the summary data on A4 pages."""

    MARGIN = 18

    def __init__(
        self, data: dict[str, Any], *, version: int, generated: date, created_at: datetime
    ) -> None:
        self.data = data
        self.version = version
        self.today = generated
        self.generated = german_date(generated)
        self.created_at = created_at

    def build(self) -> bytes:
        from fpdf import FPDF

        data, version, generated = self.data, self.version, self.generated
        title = data["campaign"]["title"]
        office = data["coordinator"]["office"]

        class Document(FPDF):
            def header(self) -> None:
                if self.page_no() == 1:
                    return
                self.set_font("DejaVu", "", 8)
                self.set_text_color(90, 90, 90)
                self.cell(0, 5, f"Zusammenfassung {title} · Version {version} · Stand {generated}")
                self.ln(8)
                self.set_text_color(0, 0, 0)

            def footer(self) -> None:
                self.set_y(-12)
                self.set_font("DejaVu", "", 8)
                self.set_text_color(90, 90, 90)
                self.cell(0, 5, office, align="L")
                self.set_x(self.l_margin)
                self.cell(0, 5, f"Seite {self.page_no()} von {{nb}}", align="R")
                self.set_text_color(0, 0, 0)

        pdf = Document(orientation="P", unit="mm", format="A4")
        pdf.set_title(f"Zusammenfassung {title}")
        pdf.set_author(office)
        pdf.set_creator("efa-rollout")
        pdf.set_lang("de-DE")
        pdf.set_creation_date(self.created_at)  # the version's real moment, stored once
        pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
        pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
        pdf.set_margins(self.MARGIN, 15, self.MARGIN)
        pdf.set_auto_page_break(True, margin=18)
        self.pdf = pdf
        pdf.add_page()
        self._title()
        self._at_a_glance()
        self._municipalities()
        self._key_answers()
        self._open_points()
        self._next_steps()
        self._dates()
        self._contact()
        return bytes(pdf.output())

    # -- building blocks ----------------------------------------------------------------------

    def _heading(self, text: str) -> None:
        pdf = self.pdf
        if pdf.get_y() > pdf.h - 50:
            pdf.add_page()
        pdf.ln(4)
        pdf.set_font("DejaVu", "B", 12)
        pdf.multi_cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
        pdf.set_font("DejaVu", "", 9.5)

    def _paragraph(self, text: str, *, size: float = 9.5, bold: bool = False) -> None:
        pdf = self.pdf
        pdf.set_font("DejaVu", "B" if bold else "", size)
        pdf.multi_cell(0, 5, text, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1.5)
        pdf.set_font("DejaVu", "", 9.5)

    def _table(
        self, headings: list[str], rows: list[list[str]], widths: list[float], size: float = 8.5
    ) -> None:
        from fpdf.fonts import FontFace

        pdf = self.pdf
        pdf.set_font("DejaVu", "", size)
        with pdf.table(
            col_widths=widths,
            text_align="LEFT",
            v_align="TOP",
            line_height=4.2,
            padding=1.2,
            headings_style=FontFace(emphasis="BOLD", fill_color=(232, 236, 241)),
            width=pdf.epw,
            repeat_headings=1,
        ) as table:
            heading = table.row()
            for text in headings:
                heading.cell(text)
            for values in rows:
                row = table.row()
                for value in values:
                    row.cell(value or "–")
        pdf.ln(2)
        pdf.set_font("DejaVu", "", 9.5)

    # -- sections -----------------------------------------------------------------------------

    def _title(self) -> None:
        pdf, data = self.pdf, self.data
        pdf.set_font("DejaVu", "B", 16)
        pdf.multi_cell(
            0, 8, "Zusammenfassung der Informationserhebung", new_x="LMARGIN", new_y="NEXT"
        )
        pdf.set_font("DejaVu", "B", 12)
        pdf.multi_cell(0, 7, data["campaign"]["title"], new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 9.5)
        pdf.set_text_color(70, 70, 70)
        pdf.multi_cell(
            0,
            5,
            f"{data['campaign']['area_name']} · Version {self.version} · Stand {self.generated}",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_text_color(0, 0, 0)
        pdf.ln(3)
        self._paragraph(intro_text(data))

    def _at_a_glance(self) -> None:
        data = self.data
        counts = data["counts"]
        lines = [f"Go-Live: {data['go_live']}"]
        if data["collection_deadline"]:
            lines.append(f"Rückmeldefrist: {data['collection_deadline']}")
        lines.append(
            f"Rückmeldungen eingereicht: {counts['submitted']} von {counts['total']} Kommunen"
        )
        pdf = self.pdf
        pdf.set_fill_color(244, 246, 248)
        pdf.set_font("DejaVu", "B", 9.5)
        pdf.multi_cell(
            0, 5.5, "\n".join(lines), fill=True, padding=2, new_x="LMARGIN", new_y="NEXT"
        )
        pdf.set_font("DejaVu", "", 9.5)

    def _municipalities(self) -> None:
        data = self.data
        self._heading("1. Stand der Kommunen")
        if not data["municipalities"]:
            self._paragraph("Es nehmen noch keine Kommunen teil.")
            return
        rows = []
        for m in data["municipalities"]:
            rows.append([m["name"], m["phase"], m["answers"], "Pilotkommune" if m["pilot"] else ""])
        self._table(["Kommune", "Phase", "Rückmeldung", "Hinweis"], rows, [36, 22, 28, 14])

    def _key_answers(self) -> None:
        data = self.data
        pdf = self.pdf
        if data["key_rows"] and data["key_fields"]:
            pdf.add_page(orientation="L")
        self._heading("2. Wichtige Angaben im Überblick")
        if not data["key_fields"]:
            self._paragraph("Für diese Kampagne sind keine Schlüsselangaben festgelegt.")
            return
        if not data["key_rows"]:
            self._paragraph("Es liegen noch keine eingereichten Rückmeldungen vor.")
            return
        widths = [16.0] + [84.0 / len(data["key_fields"])] * len(data["key_fields"])
        rows = [[r["name"], *r["values"]] for r in data["key_rows"]]
        self._table(["Kommune", *data["key_fields"]], rows, widths, size=7.5)
        pdf.add_page(orientation="P")

    def _open_points(self) -> None:
        self._heading("3. Offene Punkte")
        points = self.data["open_points"]
        if not points:
            self._paragraph("Derzeit sind keine offenen Punkte gemeldet.")
            return
        rows = [[p["name"], p["text"], ", ".join(p["missing"])] for p in points]
        self._table(["Kommune", "Offene Punkte und Fragen", "Fehlende Angaben"], rows, [25, 50, 25])

    def _next_steps(self) -> None:
        self._heading("4. Was als Nächstes geschieht")
        for paragraph in next_steps_text(self.data, self.today):
            self._paragraph(paragraph)
        rows = [[s["due"], s["title"], s["owner"], s["note"]] for s in self.data["next_steps"]]
        if rows:
            self._table(["Frist", "Punkt", "Zuständig", "Hinweis"], rows, [14, 54, 14, 18])

    def _dates(self) -> None:
        self._heading("5. Zentrale Termine")
        rows = [[d["date"], d["label"]] for d in self.data["dates"]]
        self._table(["Datum", "Termin"], rows, [30, 70])

    def _contact(self) -> None:
        c = self.data["coordinator"]
        self._heading("Ansprechpartnerin bzw. Ansprechpartner")
        self._paragraph(
            "\n".join(
                [
                    f"{c['name']}, {c['function']}",
                    f"{c['office']}, {c['department']}",
                    c["address"],
                    f"Telefon {c['phone']} · E-Mail {c['email']}",
                ]
            )
        )
