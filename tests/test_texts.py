"""The text catalogue (templates/texts/*.ini): every code the code asks for exists, every entry is
asked for, the tables beside the enums are complete, and it is read lazily (not at import)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from efa_rollout import texts
from efa_rollout.domain.stages import (
    CAMPAIGN_STATUS_LABELS,
    STAGE_LABELS,
    STATUS_LABELS,
    CampaignStatus,
    EnrolmentStatus,
    Stage,
)

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ["efa_rollout", "flows", "tasks", "models", "deployments"]
#: Calls whose first argument names a message (``section.key``) of the catalogue.
MESSAGE_CALLS = {"say", "Problem", "problem_text"}
#: Calls whose first argument names a whole section.
SECTION_CALLS = {"table", "section"}
#: The portal's label calls name a section under ``portal.``.
PORTAL_LABEL_CALLS = {"label", "labels"}
#: What a code or section name looks like (other `say`s, e.g. the demo's print, take sentences).
NAME = re.compile(r"[a-z_]+(\.[a-z0-9_]+)*(\.\{)?")


def _names_of(first: ast.expr, constants: dict[str, str]) -> list[str]:
    """The literal names an argument can be: a string, either branch of `a if c else b`, a
    module constant (``NON_ASCII = "address.non_ascii_local_part"``), or an f-string's prefix
    (``f"portal.notice.{key}"`` gives ``portal.notice.{``)."""
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return [first.value]
    if isinstance(first, ast.IfExp):
        return _names_of(first.body, constants) + _names_of(first.orelse, constants)
    if isinstance(first, ast.Name) and first.id in constants:
        return [constants[first.id]]
    if isinstance(first, ast.JoinedStr) and isinstance(first.values[0], ast.Constant):
        return [str(first.values[0].value) + "{"]
    return []


def _called(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _asked_for() -> tuple[set[str], set[str]]:
    """Every message code and every section the production code names."""
    codes: set[str] = set()
    sections: set[str] = set()
    trees = {
        path: ast.parse(path.read_text(encoding="utf-8"))
        for top in PRODUCTION
        for path in (ROOT / top).rglob("*.py")
    }
    constants = {
        target.id: node.value.value
        for tree in trees.values()
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            called = _called(node)
            for name in _names_of(node.args[0], constants):
                if not NAME.fullmatch(name):
                    continue
                if name.endswith(".{"):  # a key chosen at run time: the whole section is used
                    sections.add(name[:-2])
                elif called in MESSAGE_CALLS and "." in name:
                    codes.add(name)
                elif called in SECTION_CALLS:
                    sections.add(name)
                elif called in PORTAL_LABEL_CALLS and path.parent.name == "portal":
                    sections.add(f"portal.{name}")
    return codes, sections


def test_every_code_the_code_asks_for_exists() -> None:
    codes, sections = _asked_for()
    assert {"portal.newer_version", "contact.no_contact_left", "report.light_stage_rules"} <= codes
    assert {"stage", "report.light", "portal.date_labels", "portal.error_title"} <= sections
    catalogue = texts.catalogue()
    missing_sections = sorted(s for s in sections if s not in catalogue.sections)
    missing = []
    for code in sorted(codes):
        section, _, key = code.rpartition(".")
        if key not in catalogue.sections.get(section, {}):
            missing.append(code)
    assert missing_sections == [] and missing == []


def test_every_catalogue_entry_is_used() -> None:
    codes, sections = _asked_for()
    unused = [
        f"{section}.{key}"
        for section, entries in texts.catalogue().sections.items()
        if section not in sections
        for key in entries
        if f"{section}.{key}" not in codes
    ]
    assert unused == []


def test_the_tables_beside_the_enums_are_complete_and_in_order() -> None:
    # The overview's columns follow the table's order (mandatory before after-care, as before).
    assert set(STAGE_LABELS) == set(Stage) and list(STAGE_LABELS)[-3:] == [
        Stage.MANDATORY,
        Stage.AFTER_CARE,
        Stage.COMPLETED,
    ]
    assert Stage.PILOT.label == "Pilotphase"
    assert set(STATUS_LABELS) == set(EnrolmentStatus)
    assert set(CampaignStatus) <= set(CAMPAIGN_STATUS_LABELS)
    assert CampaignStatus.RUNNING.label == "läuft" and CAMPAIGN_STATUS_LABELS["closed"]


def test_filled_in_continued_and_missing() -> None:
    assert texts.say("contact.name_too_long", limit=200) == (
        "Der Name ist zu lang (höchstens 200 Zeichen)."
    )
    # A value continued on indented lines is one line, joined by single spaces.
    legend = texts.table("report.light_legend")["red"]
    assert "\n" not in legend and "  " not in legend and legend.endswith("Ansprechperson.")
    try:
        texts.say("report.gibt_es_nicht")
    except KeyError as error:
        assert "report.gibt_es_nicht fehlt" in str(error)
    else:
        raise AssertionError("a missing code must raise")


def test_a_section_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.ini").write_text("[x]\na = 1\n", encoding="utf-8")
    (tmp_path / "b.ini").write_text("[x]\nb = 2\n", encoding="utf-8")
    try:
        texts.Catalogue(tmp_path)
    except ValueError as error:
        assert "[x]" in str(error) and "a.ini" in str(error) and "b.ini" in str(error)
    else:
        raise AssertionError("a section in two files must be refused")


IMPORT_EVERYTHING = """
import importlib, pkgutil
import efa_rollout.texts as t
for top in {tops!r}:
    package = importlib.import_module(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        if ".migrations" not in info.name and not info.name.endswith("__main__"):
            importlib.import_module(info.name)
print(t.catalogue.cache_info().currsize)
"""


def test_importing_the_code_reads_no_text() -> None:
    """Modules whose labels live in the catalogue (the CLI loads some) read nothing at import."""
    code = IMPORT_EVERYTHING.format(tops=PRODUCTION)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0"]
