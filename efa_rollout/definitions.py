"""Campaign definitions: YAML files validated by pydantic when they are loaded."""

from __future__ import annotations

import re
from collections.abc import Mapping
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
from efa_rollout.texts import say, table

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
        raise ValueError(say("definition.offset_invalid", value=value))
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
            raise ValueError(say("definition.choices_missing"))
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
                known = ", ".join(MAIL_KINDS)
                raise ValueError(say("definition.mail_kind_unknown", kind=kind, known=known))
            try:
                compile_paragraph(source)
            except MailRenderError as error:
                raise ValueError(
                    say("definition.mail_paragraph", kind=kind, error=error.message)
                ) from None
        return mail

    @model_validator(mode="after")
    def _consistent(self) -> CampaignDefinition:
        required = [s for s in Stage.generic()]
        missing = [s.value for s in required if s not in self.stages]
        if missing:
            raise ValueError(say("definition.stages_missing", stages=", ".join(missing)))
        unknown = [s for s in self.stages if s not in required and s not in OPTIONAL_STAGES]
        if unknown:
            raise ValueError(say("definition.stages_unknown", stages=unknown))
        if Stage.SILENT_GO_LIVE in self.stages and self.dates.silent_go_live is None:
            raise ValueError(say("definition.silent_go_live_date"))
        if Stage.MANDATORY in self.stages and self.dates.mandatory_from is None:
            raise ValueError(say("definition.mandatory_from_date"))
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
            raise ValueError(say("definition.key_repeated", where=where, key=key))
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
    return "".join(parts) or say("definition.root")


#: Pydantic's error types as German phrases ("Input should be …" → "muss … sein").
_GERMAN: Mapping[str, str] = table("definition.pydantic")


def german_message(error: Any) -> str:
    """Pydantic's error as a German phrase ("Input should be …" → "muss … sein")."""
    kind = error.get("type", "")
    if kind in ("value_error", "assertion_error"):
        cause = error.get("ctx", {}).get("error")
        return str(cause) if cause is not None else error.get("msg", say("definition.invalid"))
    template = _GERMAN.get(kind)
    if template is None:
        return say("definition.check_unknown", kind=kind)
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
        where = say("definition.yaml_line", line=mark.line + 1) if mark else ""
        raise UserError(
            say("definition.yaml_invalid", path=path, where=where, error=error)
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(say("definition.unreadable", path=path, error=error)) from None
    if not isinstance(data, dict):
        raise UserError(say("definition.not_a_mapping", path=path))
    try:
        return CampaignDefinition.model_validate(data)
    except ValidationError as error:
        details = [_field_error(e, data) for e in error.errors()]
        raise UserError(say("definition.is_invalid", path=path), details=details) from None


def _field_error(error: Any, data: Any) -> str:
    """One detail line: the field's path, the German reason, the value unless a mapping/list."""
    text = say(
        "definition.field",
        location=_format_location(error["loc"], data),
        message=german_message(error),
    )
    if isinstance(error["input"], dict | list):
        return text
    return say("definition.field_value", text=text, value=shorten(repr(error["input"]), 80))


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
        known = ", ".join(sorted(files)) or say("definition.none_known")
        raise UserError(say("definition.not_found", key=key, known=known))
    definition = load_definition(files[key])
    if definition.key != key:
        raise UserError(
            say("definition.key_mismatch", path=files[key], key=definition.key, name=key)
        )
    return definition
