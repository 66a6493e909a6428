"""The district overview: every municipality of an area × every campaign, by stage."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlmodel import Session, col

from efa_rollout import texts
from efa_rollout.domain.stages import STAGE_LABELS
from efa_rollout.reports.model import (
    MILESTONES,
    DistrictOverview,
    OverviewCampaign,
    OverviewCell,
    OverviewRow,
)
from efa_rollout.reports.rollup_groups import sort_key, stage_label
from efa_rollout.services.history import PastState, past_states
from efa_rollout.settings import get_settings
from models import Campaign, Enrolment, Municipality

#: GV100AD types of unincorporated land: no town hall, nothing to roll out.
UNINCORPORATED = ("65", "66")

E = Enrolment
M = Municipality


def district_overview(
    session: Session, *, area_code: str | None = None, as_of: datetime | None = None
) -> DistrictOverview:
    """Which stage each municipality of AREA_CODE (district or state; None: all) is in, per campaign."""
    generated_at = as_of or datetime.now(UTC)
    municipalities = _municipalities(session, area_code)
    cells = _cells(session, area_code, generated_at)
    campaigns = _campaigns(session, area_code, {cid for row in cells.values() for cid in row})
    _count_cells(campaigns, cells)
    rows = [
        OverviewRow(
            ags=m["ags"],
            name=m["name"],
            association_name=m["association_name"],
            district_code=m["district_code"],
            district_name=m["district_name"],
            cells=cells.get(m["ags"], {}),
        )
        for m in municipalities
    ]
    return DistrictOverview(
        area_code=area_code,
        area_name=_area_name(municipalities, area_code),
        generated_at=generated_at,
        campaigns=campaigns,
        rows=rows,
        stage_labels={stage.value: label for stage, label in STAGE_LABELS.items()},
        attribution=texts.say("report.gv100ad_attribution")
        if _from_gv100ad(municipalities)
        else None,
    )


def _in_area(area_code: str | None) -> Any:
    """Filter on the AGS prefix (state '08', district '08136', or everything)."""
    return col(M.ags).startswith(area_code) if area_code else col(M.ags).is_not(None)


def _municipalities(session: Session, area_code: str | None) -> list[dict[str, Any]]:
    """The area's municipalities with a town hall, in name order."""
    query = select(
        col(M.ags),
        col(M.name),
        col(M.association_name),
        col(M.district_code),
        col(M.district_name),
        col(M.state_name),
        col(M.source),
    ).where(
        _in_area(area_code),
        or_(col(M.type_code).is_(None), col(M.type_code).not_in(UNINCORPORATED)),
    )
    rows = [dict(row) for row in session.connection().execute(query).mappings()]
    rows.sort(key=lambda r: (r["district_code"], sort_key(r["name"]), r["ags"]))
    return rows


def _cells(
    session: Session, area_code: str | None, as_of: datetime
) -> dict[str, dict[str, OverviewCell]]:
    """AGS → campaign → where the municipality stood at AS_OF (replayed from the event log)."""
    query = (
        select(col(E.id), col(E.ags), col(E.campaign_id), col(E.stage), col(E.status))
        .join(M, col(M.ags) == col(E.ags))
        .where(_in_area(area_code))
    )
    zone = get_settings().zone
    replayed: dict[str, dict[int, PastState]] = {}
    cells: dict[str, dict[str, OverviewCell]] = defaultdict(dict)
    for enrolment_id, ags, campaign_id, stage, status in session.connection().execute(query):
        assert enrolment_id is not None  # a primary key
        if campaign_id not in replayed:
            replayed[campaign_id] = past_states(session, campaign_id, as_of=as_of)
        state = replayed[campaign_id].get(enrolment_id)
        dates: dict[str, date] = {}
        if state is not None:
            if state.replayed_stage and not state.enrolled:
                continue
            if state.replayed_stage and state.stage:
                stage = state.stage
            status = state.status or status
            dates = {
                name: state.milestones[key].astimezone(zone).date()
                for name, key, _ in MILESTONES
                if key in state.milestones and key != "completed"
            }
        cells[ags][campaign_id] = OverviewCell(
            stage=stage, stage_label=stage_label(stage), status=status, dates=dates
        )
    return cells


def _count_cells(
    campaigns: list[OverviewCampaign], cells: dict[str, dict[str, OverviewCell]]
) -> None:
    """Stage counts per campaign from the (replayed) cells."""
    for campaign in campaigns:
        counts: dict[str, int] = defaultdict(int)
        for row in cells.values():
            cell = row.get(campaign.id)
            if cell is not None:
                counts[cell.stage if cell.status == "active" else cell.status] += 1
        campaign.stage_counts = _in_pipeline_order(dict(counts))
        campaign.enrolled = sum(counts.values())


def _campaigns(
    session: Session, area_code: str | None, with_enrolments: set[str]
) -> list[OverviewCampaign]:
    """The campaigns with enrolments in the area, with active enrolments per stage (SQL)."""
    counts_query = (
        select(col(E.campaign_id), col(E.stage), col(E.status), func.count())
        .join(M, col(M.ags) == col(E.ags))
        .where(_in_area(area_code))
        .group_by(E.campaign_id, E.stage, E.status)
    )
    stage_counts: dict[str, dict[str, int]] = defaultdict(dict)
    enrolled: dict[str, int] = defaultdict(int)
    for campaign_id, stage, status, n in session.connection().execute(counts_query):
        bucket = stage if status == "active" else status
        stage_counts[campaign_id][bucket] = stage_counts[campaign_id].get(bucket, 0) + n
        enrolled[campaign_id] += n
    query = (
        select(Campaign)
        .where(col(Campaign.id).in_(with_enrolments))
        .order_by(col(Campaign.created_at))
    )
    return [
        OverviewCampaign(
            id=c.id,
            title=c.title,
            service=c.service,
            status=c.status,
            stage_counts=_in_pipeline_order(stage_counts[c.id]),
            enrolled=enrolled[c.id],
            go_live=c.go_live,
            mandatory_from=_date(c.dates.get("mandatory_from")),
        )
        for c in session.scalars(query).all()
    ]


def _in_pipeline_order(counts: dict[str, int]) -> dict[str, int]:
    """Stage counts in pipeline order, then paused and not applicable."""
    order = [*STAGE_LABELS, "paused", "not_applicable"]
    rank = {str(key): index for index, key in enumerate(order)}
    return dict(sorted(counts.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def _area_name(municipalities: list[dict[str, Any]], area_code: str | None) -> str | None:
    """The district's or state's name, from the directory (without a code: what the data holds)."""
    if not municipalities:
        return None
    first = municipalities[0]
    if area_code:
        return first["district_name"] if len(area_code) >= 5 else first["state_name"]
    districts = {m["district_name"] or m["district_code"] for m in municipalities}
    if len(districts) == 1:
        return districts.pop()
    states = {m["state_name"] for m in municipalities if m["state_name"]}
    return states.pop() if len(states) == 1 else texts.say("report.all_areas")


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def _from_gv100ad(municipalities: list[dict[str, Any]]) -> bool:
    return any("gv100" in (m["source"] or "").lower() for m in municipalities)
