"""Campaign definitions: the shipped ones load, broken ones name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from efa_rollout.cli import app
from efa_rollout.definitions import get_definition, load_definition, parse_offset
from efa_rollout.domain.stages import Stage
from efa_rollout.errors import UserError


@pytest.mark.parametrize("key", ["viba-bw", "ewa"])
def test_shipped_definitions_load(key: str, efa_env: Path) -> None:
    definition = get_definition(key)
    assert definition.key == key
    assert set(Stage.generic()) <= set(definition.stages)
    assert any(f.required for f in definition.questionnaire)
    assert all(item.due < 200 for item in definition.checklist)


def test_viba_targets_the_landratsamt_and_has_pilots_and_mandatory(efa_env: Path) -> None:
    viba = get_definition("viba-bw")
    assert viba.target.where == {"baurechtsbehoerde": "landratsamt"}
    assert {Stage.PILOT, Stage.SILENT_GO_LIVE, Stage.MANDATORY} <= set(viba.stages)
    assert any(i.pilots_only for i in viba.checklist)


def test_ewa_carries_the_waste_fee_question(efa_env: Path) -> None:
    ewa = get_definition("ewa")
    assert "muellveranlagung" in {f.key for f in ewa.questionnaire}
    assert ewa.go_live_requires_checklist


@pytest.mark.parametrize(
    ("text", "days"), [("-12w", -84), ("+4w", 28), ("-10d", -10), ("T-3w", -21), ("0d", 0)]
)
def test_offsets(text: str, days: int) -> None:
    assert parse_offset(text) == days


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    source = Path(__file__).resolve().parent.parent / "templates" / "campaigns" / "ewa.yaml"
    text = source.read_text(encoding="utf-8")
    assert old in text
    target = tmp_path / "campaigns" / "ewa-kaputt.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text.replace("key: ewa\n", "key: ewa-kaputt\n").replace(old, new), "utf-8")
    return target


def test_broken_field_names_file_and_path(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, 'due: "-6w"}', 'due: "sechs Wochen"}')
    with pytest.raises(UserError) as caught:
        load_definition(path)
    text = caught.value.render()
    assert str(path) in text
    assert "checklist[3] (key: dvdv_osci).due" in text


def test_unknown_field_type_is_reported(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, "type: yesno", "type: janein")
    with pytest.raises(UserError) as caught:
        load_definition(path)
    assert "questionnaire[7] (key: ewa_modul_bestellt).type" in caught.value.render()


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("key: x\ntitle: [unclosed\n", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_definition(path)
    assert "Zeile" in caught.value.render() and str(path) in caught.value.render()


def test_cli_lists_a_coordinators_own_definition_and_rejects_a_broken_one(efa_env: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["campaign", "templates", "--json"])
    assert result.exit_code == 0, result.output
    assert {"ewa", "viba-bw"} <= {row["key"] for row in __import__("json").loads(result.output)}
    broken_copy(efa_env.parent, "type: yesno", "type: janein")
    result = runner.invoke(app, ["campaign", "templates"])
    assert result.exit_code == 1
    assert "ewa-kaputt.yaml" in result.output
    assert "Vorlage »ewa-kaputt« ist fehlerhaft" in result.output
    assert "muss einer dieser Werte sein" in result.output  # German, not "Input should be"
    assert "viba-bw" in result.output  # the others are still listed
