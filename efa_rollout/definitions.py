"""Campaign definitions: YAML files validated by pydantic when they are loaded."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from efa_rollout import TEMPLATES_DIR
from efa_rollout.domain.stages import OPTIONAL_STAGES, Stage
from efa_rollout.errors import UserError
from efa_rollout.output_safety import shorten

BUILTIN_DIR = TEMPLATES_DIR / "campaigns"
_OFFSET = re.compile(r"^T?\s*([+-]?)\s*([0-9]+)\s*([dwm])$")

FieldType = Literal[
    "text", "textarea", "email", "phone", "date", "choice", "yesno", "contact", "contacts", "number"
]


#: Validation context of a definition snapshot read back from the database (checked on storing).
STORED = "stored_snapshot"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_offset(value: str | int) -> int:
    """Days relative to go-live from '-12w', '+4w', '-10d', 'T-3w' or an int of days."""
    if isinstance(value, int):
        return value
    match = _OFFSET.match(value.strip())
    if not match:
        raise ValueError(f"'{value}' ist kein Versatz wie '-12w', '+4w' oder '-10d'")
    sign, amount, unit = match.groups()
    days = int(amount) * {"d": 1, "w": 7, "m": 30}[unit]
    return -days if sign == "-" else days


Offset = Annotated[
    int, Field(description="Days relative to go-live (T); YAML: '-12w', '+4w', '-10d'")
]


class Choice(_Strict):
    """One option of a choice field."""

    value: str
    label: str


class QuestionField(_Strict):
    """One typed field of the questionnaire."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    type: FieldType
    required: bool = False
    help: str | None = None
    choices: list[Choice] = Field(default_factory=list)
    roles: list[str] | None = Field(None, description="Only for these role variants (None: all)")
    pilots_only: bool = False
    key_answer: bool = Field(False, description="Shown side by side in the summary")
    directory_role: str | None = Field(
        None,
        description="A contact answer updates the contact directory under this role (e.g. Bauamt)",
    )

    @field_validator("choices", mode="before")
    @classmethod
    def _choices_from_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"value": v, "label": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _choice_needs_choices(self) -> QuestionField:
        if self.type == "choice" and not self.choices:
            raise ValueError("ein Feld vom Typ 'choice' braucht 'choices'")
        return self


class ChecklistItem(_Strict):
    """One thing a municipality must do before (or after) go-live."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    owner: str = "Gemeinde"
    due: int = Field(description="Days relative to go-live (T)")
    required: bool = True
    roles: list[str] | None = None
    pilots_only: bool = False
    help: str | None = None

    @field_validator("due", mode="before")
    @classmethod
    def _offset(cls, value: Any) -> int:
        return parse_offset(value)


class ReminderPlan(_Strict):
    """When municipalities are reminded of open items, and when it escalates."""

    before_working_days: int = Field(3, ge=0, description="Friendly reminder N working days before")
    on_deadline: bool = True
    every_working_days: int = Field(5, ge=1, description="Then every N working days")
    escalate_after: int = Field(3, ge=1, description="Escalate after K reminders past the deadline")
    escalation_roles: list[str] = Field(default_factory=lambda: ["Bürgermeister", "Hauptamt"])
    max_reminders: int = Field(8, ge=1, description="Stop reminding after this many")


class SummaryPlan(_Strict):
    """How the summary goes out: on its date by the schedule, optionally after approval."""

    approval: bool = Field(
        False, description="The coordinator approves the summary before it goes to every town hall"
    )


class Target(_Strict):
    """Which municipalities of the area a campaign applies to."""

    where: dict[str, str | list[str]] = Field(
        default_factory=dict, description="Attribute filter, e.g. baurechtsbehoerde: landratsamt"
    )
    exclude_types: list[str] = Field(default_factory=lambda: ["65", "66"])
    role_attribute: str | None = Field(
        None, description="Attribute whose value is the role variant"
    )
    pilots: list[str] = Field(default_factory=list, description="AGS of pilot municipalities")


class Dates(_Strict):
    """Key dates relative to go-live; the coordinator can override them per campaign."""

    collection_deadline: int = -84
    summary: int | None = None
    pilot_start: int | None = None
    silent_go_live: int | None = None
    mandatory_from: int | None = None
    after_care_until: int | None = 28
    trainings: list[int] = Field(default_factory=list)

    @field_validator("*", mode="before")
    @classmethod
    def _offsets(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [parse_offset(v) for v in value]
        return None if value is None else parse_offset(value)


class CampaignDefinition(_Strict):
    """A campaign template: service, stages, target, questionnaire, checklist, reminders."""

    key: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: str
    service: str
    service_key: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    description: str = ""
    stages: list[Stage]
    dates: Dates = Field(default_factory=Dates)
    go_live_requires_checklist: bool = Field(
        True, description="Go live only when all required items are done"
    )
    target: Target = Field(default_factory=Target)
    contact_roles: list[str] = Field(
        default_factory=lambda: ["Hauptamt"], description="Roles that receive campaign mail"
    )
    questionnaire: list[QuestionField]
    checklist: list[ChecklistItem]
    reminders: ReminderPlan = Field(default_factory=ReminderPlan)
    summary: SummaryPlan = Field(default_factory=SummaryPlan)
    mail: dict[str, str] = Field(
        default_factory=dict, description="Extra paragraphs per mail kind (rendered sandboxed)"
    )

    @field_validator("mail")
    @classmethod
    def _compiled(cls, mail: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        """Every paragraph compiled now, so a syntax error shows when the definition loads."""
        if info.context and info.context.get(STORED):
            return mail  # checked when it was stored; reading it needs no Jinja (~0.1 s)
        from efa_rollout.mail.render import MAIL_KINDS, MailRenderError, compile_paragraph

        for kind, source in mail.items():
            if kind not in MAIL_KINDS:
                raise ValueError(f"unbekannte Mail-Art »{kind}« (bekannt: {', '.join(MAIL_KINDS)})")
            try:
                compile_paragraph(source)
            except MailRenderError as error:
                raise ValueError(f"{kind}: {error.message}") from None
        return mail

    @model_validator(mode="after")
    def _consistent(self) -> CampaignDefinition:
        required = [s for s in Stage.generic()]
        missing = [s.value for s in required if s not in self.stages]
        if missing:
            raise ValueError(f"stages: die Stufen {', '.join(missing)} fehlen")
        unknown = [s for s in self.stages if s not in required and s not in OPTIONAL_STAGES]
        if unknown:
            raise ValueError(f"stages: unbekannte Stufen {unknown}")
        if Stage.SILENT_GO_LIVE in self.stages and self.dates.silent_go_live is None:
            raise ValueError("dates.silent_go_live fehlt für die Stufe silent_go_live")
        if Stage.MANDATORY in self.stages and self.dates.mandatory_from is None:
            raise ValueError("dates.mandatory_from fehlt für die Stufe mandatory")
        _unique([f.key for f in self.questionnaire], "questionnaire")
        _unique([i.key for i in self.checklist], "checklist")
        return self

    def ordered_stages(self) -> list[Stage]:
        """This definition's stages in pipeline order."""
        return [s for s in Stage.pipeline() if s in self.stages]

    def resolve_dates(
        self, go_live: date, overrides: dict[str, date] | None = None
    ) -> dict[str, Any]:
        """Absolute key dates (ISO strings) for a campaign going live on GO_LIVE."""
        resolved: dict[str, Any] = {"go_live": go_live.isoformat()}
        for name, offset in self.dates.model_dump().items():
            if name == "trainings":
                resolved[name] = [(go_live + timedelta(days=o)).isoformat() for o in offset]
            elif offset is not None:
                resolved[name] = (go_live + timedelta(days=offset)).isoformat()
        for name, value in (overrides or {}).items():
            resolved[name] = value.isoformat()
        return resolved

    def fields_for(self, role: str | None, is_pilot: bool) -> list[QuestionField]:
        """The questionnaire fields that apply to a municipality with ROLE."""
        return [f for f in self.questionnaire if _applies(f.roles, f.pilots_only, role, is_pilot)]

    def items_for(self, role: str | None, is_pilot: bool) -> list[ChecklistItem]:
        """The checklist items that apply to a municipality with ROLE."""
        return [i for i in self.checklist if _applies(i.roles, i.pilots_only, role, is_pilot)]


def _applies(roles: list[str] | None, pilots_only: bool, role: str | None, is_pilot: bool) -> bool:
    if pilots_only and not is_pilot:
        return False
    return roles is None or role in roles


def _unique(keys: list[str], where: str) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"{where}: Schlüssel '{key}' kommt doppelt vor")
        seen.add(key)


def _format_location(loc: tuple[Any, ...], data: Any) -> str:
    """'checklist[3] (key: schulung).due' from a pydantic error location."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node):
                node = node[item]
                if isinstance(node, dict) and "key" in node:
                    label += f" (key: {node['key']})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(Wurzel)"


_GERMAN: dict[str, str] = {
    "missing": "fehlt",
    "extra_forbidden": "ist hier nicht vorgesehen (Tippfehler im Feldnamen?)",
    "string_type": "muss ein Text sein",
    "int_type": "muss eine ganze Zahl sein",
    "int_parsing": "muss eine ganze Zahl sein",
    "int_from_float": "muss eine ganze Zahl sein",
    "float_type": "muss eine Zahl sein",
    "float_parsing": "muss eine Zahl sein",
    "bool_type": "muss true oder false sein",
    "bool_parsing": "muss true oder false sein",
    "list_type": "muss eine Liste sein",
    "dict_type": "muss eine Zuordnung (key: value) sein",
    "model_type": "muss eine Zuordnung (key: value) sein",
    "date_type": "muss ein Datum (JJJJ-MM-TT) sein",
    "date_parsing": "muss ein Datum (JJJJ-MM-TT) sein",
    "date_from_datetime_parsing": "muss ein Datum (JJJJ-MM-TT) sein",
    "string_pattern_mismatch": "hat nicht die erwartete Form ({pattern})",
    "string_too_short": "ist zu kurz (mindestens {min_length} Zeichen)",
    "string_too_long": "ist zu lang (höchstens {max_length} Zeichen)",
    "too_short": "hat zu wenige Einträge (mindestens {min_length})",
    "too_long": "hat zu viele Einträge (höchstens {max_length})",
    "greater_than": "muss größer als {gt} sein",
    "greater_than_equal": "muss mindestens {ge} sein",
    "less_than": "muss kleiner als {lt} sein",
    "less_than_equal": "darf höchstens {le} sein",
    "literal_error": "muss einer dieser Werte sein: {expected}",
    "enum": "muss einer dieser Werte sein: {expected}",
    "frozen_instance": "darf nicht geändert werden",
}


def german_message(error: Any) -> str:
    """Pydantic's error as a German phrase ("Input should be …" → "muss … sein")."""
    kind = error.get("type", "")
    if kind in ("value_error", "assertion_error"):
        cause = error.get("ctx", {}).get("error")
        return str(cause) if cause is not None else error.get("msg", "ungültiger Wert")
    template = _GERMAN.get(kind)
    if template is None:
        return f"ungültiger Wert (Prüfung »{kind}«)"
    context = {k: str(v) for k, v in (error.get("ctx") or {}).items()}
    try:
        return template.format(**context)
    except KeyError:
        return template.split(" (")[0].split(": {")[0]


def load_definition(path: Path) -> CampaignDefinition:
    """Load and validate one definition file; errors name the file and the field path."""
    import yaml  # here: reading a stored snapshot needs no YAML

    try:
        # libyaml's safe loader when PyYAML has it: the same documents, ~6x faster to parse
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", Zeile {mark.line + 1}" if mark else ""
        raise UserError(
            f"Kampagnendefinition {path}{where}: kein gültiges YAML ({error})."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"Kampagnendefinition {path} kann nicht gelesen werden: {error}") from None
    if not isinstance(data, dict):
        raise UserError(
            f"Kampagnendefinition {path}: erwartet eine Zuordnung (key: value) auf oberster Ebene."
        )
    try:
        return CampaignDefinition.model_validate(data)
    except ValidationError as error:
        details = [
            f"Feld {_format_location(e['loc'], data)}: {german_message(e)}"
            + (
                f" (Wert: {shorten(repr(e['input']), 80)})"
                if not isinstance(e["input"], dict | list)
                else ""
            )
            for e in error.errors()
        ]
        raise UserError(f"Kampagnendefinition {path} ist ungültig:", details=details) from None


def definition_dirs() -> list[Path]:
    """Where definitions are found: the shipped ones, then the coordinator's folders."""
    from efa_rollout.settings import get_settings

    return [BUILTIN_DIR, *get_settings().campaign_dirs]


def definition_files() -> dict[str, Path]:
    """Definition key (file stem) → file; a coordinator's file overrides a shipped one."""
    files: dict[str, Path] = {}
    for folder in definition_dirs():
        if folder.is_dir():
            for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
                files[path.stem] = path
    return files


def get_definition(key: str) -> CampaignDefinition:
    """The definition named KEY, validated."""
    files = definition_files()
    if key not in files:
        known = ", ".join(sorted(files)) or "keine"
        raise UserError(f"Keine Kampagnendefinition »{key}« gefunden (vorhanden: {known}).")
    definition = load_definition(files[key])
    if definition.key != key:
        raise UserError(
            f"Kampagnendefinition {files[key]}: Feld key »{definition.key}« passt nicht zum Dateinamen »{key}«."
        )
    return definition
