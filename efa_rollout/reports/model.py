"""What a report shows: plain data classes, built by the roll-up queries, read by the renderers."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from efa_rollout import texts

#: Traffic lights, most urgent first; the key is English, the label German (templates/texts/).
LIGHTS: Mapping[str, str] = texts.table("report.light")
LIGHT_ORDER = {key: rank for rank, key in enumerate(("red", "yellow", "green", "grey"))}

#: What each light means, shown as the legend of every report; under it, how the stage bounds
#: the light (texts.say("report.light_stage_rules")).
LIGHT_LEGEND: Mapping[str, str] = texts.table("report.light_legend")

#: Days ahead in which an open checklist item turns a municipality yellow.
DUE_SOON_DAYS = 10


@dataclass(slots=True)
class StageSummary:
    """Count and share of one stage, with the municipalities in it (also readable as a dict)."""

    label: str
    count: int
    share: float
    municipalities: list[dict[str, str]] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        """Item access like the JSON form: summary["count"]."""
        return getattr(self, key)

    def to_json(self) -> dict[str, Any]:
        """The JSON form: label, count, share, municipalities."""
        return asdict(self)


@dataclass(slots=True)
class MunicipalityStatus:
    """Where one municipality stands in the campaign, judged at the report date."""

    ags: str
    name: str
    association_code: str | None
    association_name: str | None
    district_code: str
    district_name: str | None
    role: str | None
    is_pilot: bool
    status: str
    status_label: str
    stage: str
    stage_label: str
    stage_entered: date
    days_in_stage: int
    go_live: date
    items_total: int = 0
    items_open: int = 0
    items_overdue: int = 0
    required_overdue: int = 0
    items_due_soon: int = 0
    next_due: date | None = None
    oldest_overdue: date | None = None
    answered: bool = False
    answers_complete: bool = False
    last_contact: datetime | None = None
    failed_mail: int = 0
    unresolved_failed_mail: bool = False
    unclear_mail: int = 0
    unresolved_unclear_mail: bool = False
    contacts: int = 0
    working_contacts: int = 0
    light: str = "green"
    reasons: list[str] = field(default_factory=list)
    pilot_since: date | None = None
    silent_since: date | None = None
    live_since: date | None = None
    mandatory_since: date | None = None
    completed_on: date | None = None

    @property
    def light_label(self) -> str:
        """German name of the traffic light."""
        return LIGHTS[self.light]

    @property
    def items_done(self) -> int:
        """Applicable checklist items done by the report date."""
        return self.items_total - self.items_open

    @property
    def role_label(self) -> str:
        """The role as people read it ('vg_rosenstein' → 'VG Rosenstein')."""
        return role_label(self.role)

    @property
    def association_label(self) -> str:
        """The association's name, or a dash for municipalities in none."""
        return self.association_name or "–"

    def ref(self) -> dict[str, str]:
        """AGS and name, as listed under a stage."""
        return {"ags": self.ags, "name": self.name}

    def to_json(self) -> dict[str, Any]:
        """All fields plus the derived labels."""
        data = asdict(self)
        data.update(light_label=self.light_label, items_done=self.items_done)
        data["role_label"] = self.role_label
        return data


@dataclass(slots=True)
class GroupRollup:
    """Totals for one association, role or district."""

    key: str
    label: str
    total: int = 0
    stages: dict[str, int] = field(default_factory=dict)
    lights: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LIGHTS, 0))
    answered: int = 0
    items_open: int = 0
    items_overdue: int = 0

    @property
    def answered_share(self) -> float:
        """Share of the group's municipalities that submitted answers."""
        return self.answered / self.total if self.total else 0.0

    def to_json(self) -> dict[str, Any]:
        """The JSON form, with the share answered."""
        return {**asdict(self), "answered_share": self.answered_share}


@dataclass(slots=True)
class OverdueItem:
    """One checklist item not done by its due date."""

    ags: str
    name: str
    item_key: str
    title: str
    owner: str
    required: bool
    due: date
    days_overdue: int

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass(slots=True)
class FailedMail:
    """A campaign mail that failed permanently or whose fate is unknown."""

    ags: str | None
    name: str | None
    kind: str
    subject: str
    recipients: list[str]
    status: str
    status_label: str
    queued_at: datetime
    last_error: str | None
    resolved: bool

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass(slots=True)
class WithoutContact:
    """A municipality nobody can be reached at: no contact, or every address bounced."""

    ags: str
    name: str
    contacts: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass(slots=True)
class TimelinePoint:
    """Enrolments per stage at the end of one day."""

    day: date
    stages: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"day": self.day, "stages": dict(self.stages)}


@dataclass(slots=True)
class KeyDate:
    """A date that matters for the whole campaign: planned, first reached, and by how many."""

    key: str
    label: str
    planned: date | None
    first_reached: date | None
    reached: int

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


#: The municipality's milestone fields, the stage that starts each and its date's name in the
#: definition; their German labels are MILESTONE_LABELS.
MILESTONES: tuple[tuple[str, str, str], ...] = (
    ("pilot_since", "pilot", "pilot_start"),
    ("silent_since", "silent_go_live", "silent_go_live"),
    ("live_since", "go_live", "go_live"),
    ("mandatory_since", "mandatory", "mandatory_from"),
    ("completed_on", "completed", ""),
)
MILESTONE_LABELS: Mapping[str, str] = texts.table("report.milestone")


@dataclass(slots=True)
class CampaignRollup:
    """Everything a campaign report shows, judged at AS_OF."""

    campaign_id: str
    title: str
    service: str
    area_name: str | None
    status: str
    as_of: datetime
    today: date
    go_live: date
    dates: dict[str, Any]
    stage_order: list[str]
    stages: dict[str, StageSummary]
    paused: StageSummary
    not_applicable: StageSummary
    total: int
    lights: dict[str, int]
    municipalities: list[MunicipalityStatus]
    associations: list[GroupRollup]
    roles: list[GroupRollup]
    districts: list[GroupRollup]
    timeline: list[TimelinePoint]
    overdue: list[OverdueItem]
    failed_mail: list[FailedMail]
    without_contact: list[WithoutContact]
    attribution: str | None = None
    key_dates: list[KeyDate] = field(default_factory=list)
    completed_on: date | None = None
    district_name: str | None = None
    history: list[Any] = field(default_factory=list)

    @property
    def status_label(self) -> str:
        """The campaign's status at the report date in German."""
        return CAMPAIGN_STATUS_TEXT.get(self.status, self.status)

    @property
    def collection_deadline(self) -> date | None:
        """The deadline for the questionnaire, if the campaign has one."""
        value = self.dates.get("collection_deadline")
        return date.fromisoformat(value) if value else None

    @property
    def answered(self) -> int:
        """Municipalities (not excluded) that submitted answers."""
        return sum(1 for m in self.municipalities if m.answered and m.status != "not_applicable")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `stages` maps stage → label, count, share, municipalities."""
        return {
            "campaign": self.campaign_id,
            "title": self.title,
            "service": self.service,
            "status": self.status,
            "as_of": self.as_of,
            "today": self.today,
            "go_live": self.go_live,
            "dates": self.dates,
            "total": self.total,
            "stages": {key: summary.to_json() for key, summary in self.stages.items()},
            "paused": self.paused.to_json(),
            "not_applicable": self.not_applicable.to_json(),
            "lights": self.lights,
            "municipalities": [m.to_json() for m in self.municipalities],
            "associations": [g.to_json() for g in self.associations],
            "roles": [g.to_json() for g in self.roles],
            "districts": [g.to_json() for g in self.districts],
            "timeline": [p.to_json() for p in self.timeline],
            "overdue": [o.to_json() for o in self.overdue],
            "failed_mail": [f.to_json() for f in self.failed_mail],
            "without_contact": [w.to_json() for w in self.without_contact],
            "key_dates": [k.to_json() for k in self.key_dates],
            "completed_on": self.completed_on,
            "status_label": self.status_label,
        }


@dataclass(slots=True)
class OverviewRow:
    """One municipality across all campaigns."""

    ags: str
    name: str
    association_name: str | None
    district_code: str
    district_name: str | None
    cells: dict[str, OverviewCell]

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass(slots=True)
class OverviewCell:
    """Where one municipality stands in one campaign."""

    stage: str
    stage_label: str
    status: str
    dates: dict[str, date] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Stage label, with the status when not active."""
        if self.status == "active":
            return self.stage_label
        return f"{self.stage_label} ({STATUS_TEXT.get(self.status, self.status)})"

    @property
    def dates_text(self) -> str:
        """'Live seit 01.08.2024; Verpflichtend ab 02.01.2025' (reached milestones only)."""
        labels = MILESTONE_LABELS
        return "; ".join(f"{labels[k]} {d:%d.%m.%Y}" for k, d in self.dates.items() if k in labels)


STATUS_TEXT: Mapping[str, str] = texts.table("enrolment_status")
CAMPAIGN_STATUS_TEXT: Mapping[str, str] = texts.table("campaign_status")


@dataclass(slots=True)
class OverviewCampaign:
    """A campaign column of the district overview, with its stage counts."""

    id: str
    title: str
    service: str
    status: str
    stage_counts: dict[str, int]
    enrolled: int
    go_live: date | None = None
    mandatory_from: date | None = None

    @property
    def status_label(self) -> str:
        """The campaign's status in German."""
        return CAMPAIGN_STATUS_TEXT.get(self.status, self.status)

    def stage_summary(self, labels: dict[str, str]) -> str:
        """'Informationserhebung: 3; pausiert: 1' in pipeline order."""
        names = {**labels, **STATUS_TEXT}
        return "; ".join(f"{names.get(k, k)}: {n}" for k, n in self.stage_counts.items())


@dataclass(slots=True)
class DistrictOverview:
    """All municipalities of an area × all campaigns: which stage each one is in."""

    area_code: str | None
    area_name: str | None
    generated_at: datetime
    campaigns: list[OverviewCampaign]
    rows: list[OverviewRow]
    stage_labels: dict[str, str]
    attribution: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@functools.lru_cache(maxsize=256)
def role_label(role: str | None) -> str:
    """A role key as people read it ('vg_rosenstein' → 'VG Rosenstein', None → 'ohne Rolle')."""
    if not role:
        return texts.say("report.no_role")
    words = role.replace("-", "_").split("_")
    shown = [w.upper() if len(w) <= 2 and w.isalpha() else w.capitalize() for w in words if w]
    return " ".join(shown)
