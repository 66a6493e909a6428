"""axe-core in real headless Chromium: WCAG 2.1 A/AA violations of a rendered page.

axe-core comes from npm into a cache folder ($EFA_AXE_DIR, default ~/.cache/efa-rollout/axe) the
first time it is needed. The page is written to a file with axe injected before </body>; Chromium
loads it from file://, runs axe.run() and --dump-dom returns the result the script wrote into the
DOM. A file copy carries no HTTP headers, so a Content-Security-Policy header (the portal's forbids
every script) does not block the injected script there; stylesheets are linked to their files so
colours and contrast are checked as served.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

AXE_PACKAGE = "axe-core@4"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_RESULT = re.compile(r'<pre id="axe-result">(.*?)</pre>', re.S)

RUNNER = """
<script src="{axe}"></script>
<script>
axe.run(document, {{runOnly: {{type: "tag", values: {tags}}}, resultTypes: ["violations"]}})
  .then(function (r) {{ return r.violations.map(function (v) {{
      return {{id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.slice(0, 5).map(function (n) {{
                 return n.target.join(" ") + " – " + n.failureSummary; }})}}; }}); }})
  .catch(function (e) {{ return [{{id: "axe-error", help: String(e), nodes: []}}]; }})
  .then(function (out) {{
      var pre = document.createElement("pre"); pre.id = "axe-result";
      pre.textContent = JSON.stringify(out); document.body.appendChild(pre); }});
</script>
"""


def axe_dir() -> Path:
    """The cache folder holding node_modules/axe-core."""
    default = Path.home() / ".cache" / "efa-rollout" / "axe"
    return Path(os.environ.get("EFA_AXE_DIR", default))


def axe_script() -> Path:
    """axe.min.js, installed with npm into the cache folder when missing (skip without npm)."""
    folder = axe_dir()
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if script.exists():
        return script
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm fehlt: axe-core kann nicht installiert werden")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--prefix", str(folder), AXE_PACKAGE, "--no-audit", "--no-fund"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return script


def violations(page: str, *, static: dict[str, Path] | None = None) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A/AA violations of the HTML document PAGE, rendered by Chromium.

    STATIC maps URL prefixes in PAGE (e.g. "/static/") to local folders, so stylesheets load.
    """
    assert CHROMIUM, "chromium is not installed"
    for prefix, folder in (static or {}).items():
        page = page.replace(f'"{prefix}', f'"{folder.resolve().as_uri()}/')
    runner = RUNNER.format(axe=axe_script().as_uri(), tags=json.dumps(WCAG_TAGS))
    assert "</body>" in page
    page = page.replace("</body>", runner + "</body>", 1)
    with tempfile.TemporaryDirectory(prefix="efa-axe-") as tmp:
        source = Path(tmp) / "page.html"
        source.write_text(page, encoding="utf-8")
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--allow-file-access-from-files",
                f"--user-data-dir={Path(tmp) / 'profile'}",
                "--window-size=1280,1600",
                "--virtual-time-budget=30000",
                "--dump-dom",
                source.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    match = _RESULT.search(done.stdout)
    assert match, f"axe produced no result: {done.stderr[-2000:]}"
    return json.loads(html_lib.unescape(match.group(1)))


def describe(found: list[dict[str, Any]]) -> str:
    """The violations, one per line, for an assertion message."""
    return "\n".join(f"{v['id']} ({v.get('impact')}): {v['help']} {v['nodes']}" for v in found)
