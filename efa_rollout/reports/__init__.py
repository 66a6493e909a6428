"""Status roll-ups and reports per campaign: HTML, XLSX, CSV and Markdown, all in German."""

from efa_rollout.reports.files import write_campaign_report, write_overview_report, write_report
from efa_rollout.reports.model import (
    LIGHT_LEGEND,
    LIGHTS,
    CampaignRollup,
    DistrictOverview,
    FailedMail,
    GroupRollup,
    MunicipalityStatus,
    OverdueItem,
    StageSummary,
    TimelinePoint,
    WithoutContact,
)
from efa_rollout.reports.overview import district_overview
from efa_rollout.reports.rollup import campaign_rollup

__all__ = [
    "LIGHTS",
    "LIGHT_LEGEND",
    "CampaignRollup",
    "DistrictOverview",
    "FailedMail",
    "GroupRollup",
    "MunicipalityStatus",
    "OverdueItem",
    "StageSummary",
    "TimelinePoint",
    "WithoutContact",
    "campaign_rollup",
    "district_overview",
    "write_campaign_report",
    "write_overview_report",
    "write_report",
]
