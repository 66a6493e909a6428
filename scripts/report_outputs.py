"""Every report output of a demo database into a folder, to compare before and after a change.

    .venv/bin/efa demo --data-dir /tmp/demo            # once
    .venv/bin/python scripts/report_outputs.py /tmp/demo /tmp/before
    ... change the code or the templates ...
    .venv/bin/python scripts/report_outputs.py /tmp/demo /tmp/after
    diff -r /tmp/before /tmp/after                     # nothing: byte-identical

The "before" of a commit without checking it out: ``git archive BASE | tar -x -C /tmp/base``,
then run this script from /tmp/base with ``PYTHONPATH=/tmp/base`` and this checkout's venv.

What it writes, at ten --as-of dates across the demo's timeline (and now): `efa report` of each
campaign as html, xlsx (unpacked, member by member), csv, md and onepager-html; `efa report
--overview` as html, xlsx and onepager-html for all, a district and a state; `efa campaign
status` and `efa history` (text and JSON, whole campaign and two municipalities); `efa campaign
show`; the weekly run's files, its Prefect artifact (Markdown, table rows) and the variables of
its mail. Run before and after on the same day (the "now" outputs). The wall clock (the
reports' "Erstellt am …", the XLSX's creation time), the scratch folder and the checkout's path
(in warnings) are masked. The demo folder is copied first and never written; the PDF is left
out (Chromium's output carries its own timestamps; it prints the onepager-html compared here).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import sys
import zipfile
from datetime import datetime
from importlib.util import find_spec
from pathlib import Path

DATES: list[str | None] = [
    "2023-04-10",
    "2023-05-20",
    "2023-06-05",
    "2023-11-20",
    "2024-05-01",
    "2024-07-10",
    "2024-08-05",
    "2024-10-05",
    "2025-02-01",
    None,  # now
]
CAMPAIGN_FORMATS = ["html", "xlsx", "csv", "md", "onepager-html"]
OVERVIEW_FORMATS = ["html", "xlsx", "onepager-html"]
AREAS = [None, "08136", "08"]


def clock(year: int) -> list[re.Pattern[bytes]]:
    """Wall-clock moments of YEAR as the outputs write them (the --as-of dates are earlier)."""
    y = str(year).encode()
    return [
        re.compile(rb"\d\d\.\d\d\." + y + rb" \d\d:\d\d"),
        re.compile(y + rb"-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)?"),
        re.compile(y + rb"-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?"),
    ]


class Outputs:
    """Writes masked outputs under OUT."""

    def __init__(self, out: Path, data: Path, year: int) -> None:
        self.out = out
        self.data = data
        spec = find_spec("efa_rollout")
        assert spec is not None and spec.origin is not None
        self.root = Path(spec.origin).parents[1]  # the checkout, named in warnings
        self.clock = clock(year)  # the demo's own moments are 2023-2025

    def store(self, name: str, content: bytes) -> None:
        for pattern in self.clock:
            content = pattern.sub(b"<CLOCK>", content)
        content = content.replace(str(self.data).encode(), b"<DATA>")
        content = content.replace(str(self.root).encode(), b"<ROOT>")
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    def store_file(self, name: str, path: Path) -> None:
        """A written report; an XLSX unpacked member by member (zip timestamps left out)."""
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    self.store(f"{name}.d/{member}", archive.read(member))
        else:
            self.store(name, path.read_bytes())
        path.unlink()


def main(demo: Path, out: Path) -> int:
    """Copy DEMO to a scratch folder, write every output under OUT; return how many."""
    data = out.with_name(out.name + ".data")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copytree(demo, data)
    os.environ["EFA_DATA_DIR"] = str(data)
    for name in ("EFA_DATABASE_URL", "EFA_SMTP_URL", "EFA_MAIL_DIR", "PREFECT_API_URL"):
        os.environ.pop(name, None)
    try:
        _write_all(Outputs(out, data, datetime.now().year), data)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return sum(1 for path in out.rglob("*") if path.is_file())


def _write_all(outputs: Outputs, data: Path) -> None:
    from typer.testing import CliRunner

    from efa_rollout.cli import app

    runner = CliRunner()

    def cli(name: str, args: list[str]) -> None:
        result = runner.invoke(app, args)
        text = result.output
        if result.exception and not isinstance(result.exception, SystemExit):
            text += f"\n[exception {type(result.exception).__name__}: {result.exception}]"
        outputs.store(name, f"{text}\n[exit {result.exit_code}]\n".encode())

    with sqlite3.connect(data / "efa.db") as con:
        campaigns = [row[0] for row in con.execute("select id from campaign order by id")]
        ags_of = {
            c: [
                row[0]
                for row in con.execute(
                    "select ags from enrolment where campaign_id = ? order by ags", (c,)
                )
            ]
            for c in campaigns
        }
    scratch = data / "out"
    scratch.mkdir()
    for c in campaigns:
        cli(f"show/{c}.txt", ["campaign", "show", c])
        cli(f"show/{c}.json", ["campaign", "show", c, "--json"])
    for day in DATES:
        tag = day or "now"
        as_of = ["--as-of", day] if day else []
        for c in campaigns:
            for fmt in CAMPAIGN_FORMATS:
                target = scratch / f"r.{fmt.removeprefix('onepager-')}"
                args = ["report", c, "-f", fmt, "-o", str(target), *as_of]
                cli(f"{tag}/report-{c}-{fmt}.out", args)
                if target.exists():
                    outputs.store_file(f"{tag}/report-{c}.{fmt}", target)
            cli(f"{tag}/status-{c}.txt", ["campaign", "status", c, *as_of])
            cli(f"{tag}/status-{c}.json", ["campaign", "status", c, "--json", *as_of])
            cli(f"{tag}/history-{c}.txt", ["history", c, *as_of])
            cli(f"{tag}/history-{c}-nomail.txt", ["history", c, "--no-mail", *as_of])
            cli(f"{tag}/history-{c}.json", ["history", c, "--json", *as_of])
            for ags in ags_of[c][:2]:
                cli(f"{tag}/history-{c}-{ags}.txt", ["history", c, ags, *as_of])
        for area in AREAS:
            for fmt in OVERVIEW_FORMATS:
                target = scratch / f"o.{fmt.removeprefix('onepager-')}"
                name = f"{tag}/overview-{area or 'alle'}.{fmt}"
                where = ["--area", area] if area else []
                cli(
                    f"{name}.out",
                    ["report", "--overview", "-f", fmt, "-o", str(target), *where, *as_of],
                )
                if target.exists():
                    outputs.store_file(name, target)
    _weekly(outputs, campaigns, scratch)


def _weekly(outputs: Outputs, campaigns: list[str], scratch: Path) -> None:
    """The weekly run's files, artifact and mail variables (nothing queued)."""
    from efa_rollout.db import session_scope
    from efa_rollout.reports.weekly import build_weekly_report, mail_extra
    from efa_rollout.settings import get_settings

    zone = get_settings().zone
    folder = scratch / "weekly"
    folder.mkdir()
    for day in DATES:
        if day is None:
            continue
        moment = datetime.fromisoformat(day + "T09:00").replace(tzinfo=zone)
        for c in campaigns:
            with session_scope() as session:
                rollup, report = build_weekly_report(session, c, as_of=moment, out_dir=folder)
                extra = mail_extra(session, rollup)
            for fmt, path in report.files.items():
                outputs.store_file(f"{day}/weekly-{c}.{fmt}", path)
            outputs.store(f"{day}/weekly-{c}-artifact.md", report.markdown.encode())
            for name, value in (("rows", report.rows), ("mail", extra)):
                text = json.dumps(value, ensure_ascii=False, indent=1, default=str)
                outputs.store(f"{day}/weekly-{c}-{name}.json", text.encode())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    count = main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
    print(f"{count} outputs in {sys.argv[2]}")
