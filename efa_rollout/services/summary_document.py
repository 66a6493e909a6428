"""The summary as a document: HTML and PDF rendered from the same templates/summary/ wording."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from efa_rollout import TEMPLATES_DIR
from efa_rollout.domain import phrasing
from efa_rollout.domain.text import german_date

if TYPE_CHECKING:
    from jinja2 import Environment

SUMMARY_DIR = TEMPLATES_DIR / "summary"
FONT_DIR = SUMMARY_DIR / "fonts"
FONT = "DejaVu"
MARGIN = 18
TABLE_PT = 8.5
#: Room (mm) a heading needs below it on its page, else it starts the next one.
KEEP_WITH_HEADING = 50


def render_html(data: dict[str, Any], *, version: int, generated: date) -> str:
    """The summary as a standalone HTML page (autoescaped, with print CSS)."""
    return _env().get_template("summary.html").render(_context(data, version, generated))


def render_pdf(
    data: dict[str, Any], *, version: int, generated: date, created_at: datetime | None = None
) -> bytes:
    """The summary as PDF (A4; the key answers on landscape pages), fonts embedded.

    The body is templates/summary/content.html, the same as in the HTML page, laid out by
    fpdf2's write_html. CREATED_AT (the moment the version is built) is the PDF's creation date;
    without it the date GENERATED at midnight UTC, so the same version always gives the same bytes.
    """
    context = _context(data, version, generated)
    body = _env().get_template("content.html").render(context)
    page: Any = _env().get_template("page.html").module  # its macros are made at runtime
    head = str(page.running_head(data["campaign"], version, context["generated"]))
    office = data["coordinator"]["office"]
    pdf = _document(head, office, lambda n: str(page.page_number(n, "{nb}")))
    pdf.set_title(str(page.title(data["campaign"])))
    pdf.set_author(office)
    pdf.set_creator("efa-rollout")
    pdf.set_lang("de-DE")
    moment = created_at or datetime(generated.year, generated.month, generated.day, tzinfo=UTC)
    pdf.set_creation_date(moment)  # the version's real moment, stored once
    pdf.add_page()
    pdf.write_html(body, tag_styles=_tag_styles(), warn_on_tags_not_matching=False)
    return bytes(pdf.output())


def _context(data: dict[str, Any], version: int, generated: date) -> dict[str, Any]:
    """What the templates see: the summary data and the facts of GENERATED (no words)."""
    deadline = data["collection_deadline"]
    return {
        **data,
        "version": version,
        "generated": german_date(generated),
        "go_live_reached": phrasing.tense(_day(data["go_live"]), generated) != phrasing.FUTURE,
        "deadline_passed": bool(deadline) and _day(deadline) < generated,
    }


@cache
def _env() -> Environment:
    """The Jinja environment of templates/summary/ (autoescaped, strict)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(str(SUMMARY_DIR)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _day(text: str) -> date:
    """The date of 'Freitag, 31.05.2023' (the summary data holds German dates)."""
    return datetime.strptime(text.rsplit(" ", 1)[-1], "%d.%m.%Y").date()


def _tag_styles() -> dict[str, Any]:
    """The PDF's look of the template's tags (sizes in pt, margins in mm)."""
    from fpdf.fonts import TextStyle

    ink = "#1d232b"
    return {
        "h1": TextStyle(font_family=FONT, font_style="B", font_size_pt=16, color=ink, b_margin=1),
        "h2": TextStyle(
            font_family=FONT, font_style="B", font_size_pt=12, color=ink, t_margin=6, b_margin=2
        ),
        "p": TextStyle(font_family=FONT, font_size_pt=9.5, color=ink, b_margin=1.5),
    }


def _document(head: str, office: str, page_number: Any) -> Any:
    """An A4 FPDF with the embedded fonts, HEAD atop every page but the first, OFFICE and the
    page number at the foot of each.

    A `<section class="... landscape">` of the template starts a landscape page; the page after
    it is portrait again. The parser's private helpers (_end_paragraph, _perform_page_break, the
    table's alignment) are those of fpdf2 2.8, hence its upper bound in pyproject.toml.
    """
    from fpdf import FPDF
    from fpdf.enums import Align, VAlign
    from fpdf.html import HTML2FPDF

    class PrintHtml(HTML2FPDF):
        """fpdf2's HTML parser with landscape sections."""

        landscape = False
        text_pt = 9.5

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            classes = (dict(attrs).get("class") or "").split()
            if tag == "section" and "landscape" in classes:
                self.landscape = True
                self._turn("L")
            elif tag == "h2" and pdf.get_y() > pdf.h - KEEP_WITH_HEADING:  # no lone heading
                self._end_paragraph()
                pdf._perform_page_break()
            if tag == "table":  # tables a size smaller than the text, as in the print CSS
                self.text_pt, self.font_size_pt = self.font_size_pt, TABLE_PT
            super().handle_starttag(tag, attrs)
            if tag == "table" and self.table:  # write_html has no attribute for it: left, top
                self.table._text_align, self.table._v_align = Align.L, VAlign.T

        def handle_endtag(self, tag: str) -> None:
            super().handle_endtag(tag)
            if tag == "table":
                self.font_size_pt = self.text_pt
            if tag == "section" and self.landscape:
                self.landscape = False
                self._turn("P")

        def _turn(self, orientation: str) -> None:
            self._end_paragraph()
            pdf.next_orientation = orientation
            pdf._perform_page_break()  # keeps write_html's local context
            pdf.next_orientation = ""

    class Document(FPDF):
        HTML2FPDF_CLASS = PrintHtml
        next_orientation = ""

        def add_page(self, *args: Any, **kwargs: Any) -> None:
            if self.next_orientation:
                kwargs.update(orientation=self.next_orientation, same=False)
            super().add_page(*args, **kwargs)

        def header(self) -> None:
            if self.page_no() == 1:
                return
            with self.local_context(font_family=FONT, font_size_pt=8, text_color=(90, 90, 90)):
                self.cell(0, 5, head)
            self.ln(8)

        def footer(self) -> None:
            self.set_y(-12)
            with self.local_context(font_family=FONT, font_size_pt=8, text_color=(90, 90, 90)):
                self.cell(0, 5, office, align="L")
                self.set_x(self.l_margin)
                self.cell(0, 5, page_number(self.page_no()), align="R")

    pdf = Document(orientation="P", unit="mm", format="A4")
    pdf.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_font(FONT, size=9.5)
    pdf.set_margins(MARGIN, 15, MARGIN)
    pdf.set_auto_page_break(True, margin=18)
    return pdf
