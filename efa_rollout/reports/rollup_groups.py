"""Roll-up views computed from the municipalities' statuses alone: stage counts, lights, groups."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from efa_rollout import texts
from efa_rollout.reports.model import (
    LIGHTS,
    GroupRollup,
    MunicipalityStatus,
    StageSummary,
    WithoutContact,
    role_label,
)

#: A group's key and its name.
GroupKey = tuple[str, str]


def sort_key(name: str) -> str:
    """A German-friendly sort key: umlauts sort with their base letter."""
    folded = name.casefold()
    for umlaut, base in (("ä", "a"), ("ö", "o"), ("ü", "u"), ("ß", "ss")):
        folded = folded.replace(umlaut, base)
    return folded


def stage_counts(municipalities: Iterable[MunicipalityStatus]) -> Counter[tuple[str, str]]:
    """Enrolments per (stage, status) at AS_OF (the replayed ones)."""
    return Counter((m.stage, m.status) for m in municipalities)


def stage_summaries(
    order: list[str],
    counts: Counter[tuple[str, str]],
    total: int,
    municipalities: list[MunicipalityStatus],
) -> tuple[dict[str, StageSummary], StageSummary, StageSummary]:
    """Active enrolments per stage (zero included), and paused / not applicable apart."""
    members: dict[str, list[dict[str, str]]] = defaultdict(list)
    for m in municipalities:
        members[m.stage if m.status == "active" else m.status].append(m.ref())

    def summary(key: str, label: str, count: int) -> StageSummary:
        share = count / total if total else 0.0
        return StageSummary(label=label, count=count, share=share, municipalities=members[key])

    stages = {
        stage: summary(stage, stage_label(stage), counts[(stage, "active")]) for stage in order
    }
    paused = sum(n for (_, status), n in counts.items() if status == "paused")
    excluded = sum(n for (_, status), n in counts.items() if status == "not_applicable")
    return (
        stages,
        summary("paused", texts.say("report.paused"), paused),
        summary("not_applicable", texts.say("report.not_applicable"), excluded),
    )


def light_counts(municipalities: Iterable[MunicipalityStatus]) -> dict[str, int]:
    counts = dict.fromkeys(LIGHTS, 0)
    for m in municipalities:
        counts[m.light] += 1
    return counts


@dataclass(frozen=True, slots=True)
class GroupCount:
    """Enrolments of one association, district, role, stage and status."""

    association_code: str | None
    association_name: str | None
    district_code: str
    district_name: str | None
    role: str | None
    stage: str
    status: str
    n: int


def group_counts(municipalities: Iterable[MunicipalityStatus]) -> list[GroupCount]:
    """Enrolments per association, district, role, stage and status at AS_OF."""
    counts = Counter(
        (
            m.association_code,
            m.association_name,
            m.district_code,
            m.district_name,
            m.role,
            m.stage,
            m.status,
        )
        for m in municipalities
    )
    return [GroupCount(*key, n=n) for key, n in counts.items()]


def district_name(municipalities: Sequence[MunicipalityStatus]) -> str | None:
    """The district's name when all municipalities are in one."""
    names = {m.district_name or m.district_code for m in municipalities}
    return names.pop() if len(names) == 1 else None


def association_of(row: Any) -> GroupKey:
    code = row.association_code
    key = f"{row.district_code}{code}" if code else f"{row.district_code}-ohne"
    district = row.district_name or row.district_code
    return key, row.association_name or texts.say("report.no_association", district=district)


def role_of(row: Any) -> GroupKey:
    return row.role or "", role_label(row.role)


def district_of(row: Any) -> GroupKey:
    return row.district_code, row.district_name or row.district_code


def group_rollups(
    counts: Sequence[Any], municipalities: Sequence[MunicipalityStatus], key_of: Any
) -> list[GroupRollup]:
    """Fold the SQL counts into groups, then add lights, answers and items per group."""
    groups: dict[str, GroupRollup] = {}
    for row in counts:
        key, label = key_of(row)
        group = groups.setdefault(key, GroupRollup(key=key, label=label))
        bucket = row.stage if row.status == "active" else row.status
        group.stages[bucket] = group.stages.get(bucket, 0) + row.n
        group.total += row.n
    for m in municipalities:
        group = groups[key_of(m)[0]]
        group.lights[m.light] += 1
        group.answered += int(m.answered)
        if m.status == "active":  # as in the overdue list: paused ones are not chased
            group.items_open += m.items_open
            group.items_overdue += m.items_overdue
    return sorted(groups.values(), key=lambda g: (sort_key(g.label), g.key))


def without_contact(municipalities: Iterable[MunicipalityStatus]) -> list[WithoutContact]:
    """Taking part, but nobody to write to: no contact, or every address failed."""
    result = []
    for m in municipalities:
        if m.status == "not_applicable" or m.working_contacts:
            continue
        reason = texts.say("report.no_working_address" if m.contacts else "report.no_contact")
        result.append(WithoutContact(ags=m.ags, name=m.name, contacts=m.contacts, reason=reason))
    return result


def stage_label(stage: str) -> str:
    """German label of a stage key (the key itself when unknown)."""
    return _LABELS.get(stage, stage)


#: STAGE_LABELS keyed by the stored str (the same catalogue section).
_LABELS: Mapping[str, str] = texts.table("stage")
