"""`efa campaign`: definitions, creation, status and the end of a campaign (running it: campaign_run)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import typer

from efa_rollout import texts
from efa_rollout.cli import campaign_run
from efa_rollout.cli._common import parse_as_of, parse_date, print_json, print_table
from efa_rollout.cli.campaign_run import AS_OF
from efa_rollout.domain.stages import CAMPAIGN_STATUS_LABELS
from efa_rollout.domain.text import german_date
from efa_rollout.errors import UserError
from efa_rollout.texts import say, table

app = typer.Typer(help="Kampagnen anlegen, starten und verfolgen.", no_args_is_help=True)


@app.command("templates")
def templates_command(
    as_json: bool = typer.Option(False, "--json", help="Als JSON ausgeben."),
) -> None:
    """Listet die verfügbaren Kampagnenvorlagen (mitgelieferte und eigene)."""
    from efa_rollout.definitions import definition_files, load_definition

    rows = []
    for key, path in definition_files().items():
        try:
            definition = load_definition(path)
        except UserError as error:  # one broken own definition must not hide the others
            rows.append(_broken_row(key, path, error))
            continue
        rows.append(
            {
                "key": key,
                "title": definition.title,
                "service": definition.service,
                "file": str(path),
                "questions": len(definition.questionnaire),
                "checklist_items": len(definition.checklist),
            }
        )
    if as_json:
        print_json(rows)
        if any(row.get("error") for row in rows):
            raise typer.Exit(1)
        return
    print_table(
        list(table("cli.campaign.templates_columns").values()),
        [[r["key"], r["title"], r["questions"], r["checklist_items"], r["file"]] for r in rows],
    )
    for row in rows:
        if row.get("error"):
            typer.echo("\n" + say("cli.campaign.template_broken", key=row["key"]))
            typer.echo("\n".join(f"  {line}" for line in row["error"]))
    if any(row.get("error") for row in rows):
        raise typer.Exit(1)  # listed, but a script should notice the broken one


def _broken_row(key: str, path: Any, error: UserError) -> dict[str, Any]:
    """A templates row for a definition that does not load, carrying its error."""
    return {
        "key": key,
        "title": say("cli.campaign.broken_title"),
        "service": None,
        "file": str(path),
        "questions": say("cli.campaign.broken_count"),
        "checklist_items": say("cli.campaign.broken_count"),
        "error": [error.message, *error.details],
    }


@app.command("create")
def create_command(
    template: str = typer.Argument(
        ..., help="Vorlage, z. B. ewa oder viba-bw (efa campaign templates)."
    ),
    district: str | None = typer.Option(None, "--district", help="Kreisschlüssel, z. B. 08136."),
    state: str | None = typer.Option(None, "--state", help="Landesschlüssel, z. B. 08."),
    go_live: str = typer.Option(..., "--go-live", help="Go-Live-Datum (JJJJ-MM-TT)."),
    name: str | None = typer.Option(
        None, "--name", help="Name der Kampagne (Standard: vorlage-kreis)."
    ),
    dates: list[str] = typer.Option(
        [], "--date", help="Termin überschreiben: name=JJJJ-MM-TT (mehrfach)."
    ),
    pilots: list[str] = typer.Option([], "--pilot", help="AGS einer Pilotgemeinde (mehrfach)."),
    allow_past: bool = typer.Option(
        False,
        "--allow-past",
        help="Go-Live in der Vergangenheit zulassen (eine erfolgte Einführung nachtragen).",
    ),
) -> None:
    """Legt eine Kampagne aus einer Vorlage an (gestartet wird sie mit efa campaign start)."""
    from efa_rollout.db import session_scope
    from efa_rollout.definitions import get_definition
    from efa_rollout.services import campaigns
    from efa_rollout.settings import get_settings

    if bool(district) == bool(state):
        raise UserError(say("cli.campaign.area_one"))
    definition = get_definition(template)
    overrides = {}
    for item in dates:
        key, _, value = item.partition("=")
        overrides[key.strip()] = parse_date(value.strip(), option=f"--date {key}")
    with session_scope() as session:
        campaign = campaigns.create_campaign(
            session,
            definition=definition,
            area_code=(district or state or ""),
            go_live=parse_date(go_live, option="--go-live"),
            now=datetime.now(UTC),
            name=name,
            date_overrides=overrides,
            pilots=pilots,
            actor=get_settings().actor,
            allow_past=allow_past,
        )
        count = len(campaigns.targeted_municipalities(session, definition, campaign.area_code))
        past = campaigns.past_dates(campaign, datetime.now(UTC))
        created = say(
            "cli.campaign.created",
            campaign=campaign.id,
            title=campaign.title,
            area=campaign.area_name,
            count=count,
            go_live=german_date(campaign.go_live),
        )
        typer.echo(f"{created}\n{say('cli.campaign.start_with', campaign=campaign.id)}")
    if past:
        typer.echo(say("cli.campaign.past_dates"), err=True)
        typer.echo("\n".join(f"  {line}" for line in past), err=True)


@app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Als JSON ausgeben.")) -> None:
    """Listet alle Kampagnen."""
    from efa_rollout.db import session_scope
    from efa_rollout.services import lookup

    with session_scope() as session:
        found = lookup.all_campaigns(session)
        counts = {c.id: sum(lookup.stage_counts(session, c.id).values()) for c in found}
    rows: list[dict[str, Any]] = [
        {
            "id": c.id,
            "title": c.title,
            "service": c.service,
            "area": c.area_name or c.area_code,
            "go_live": c.go_live.isoformat(),
            "status": c.status,
            "enrolments": counts[c.id],
        }
        for c in found
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo(say("cli.campaign.none_yet"))
        return
    print_table(
        list(table("cli.campaign.list_columns").values()),
        [
            [
                r["id"],
                r["service"],
                r["area"],
                german_date(c.go_live),
                CAMPAIGN_STATUS_LABELS.get(r["status"], r["status"]),
                r["enrolments"],
            ]
            for r, c in zip(rows, found, strict=True)
        ],
    )


@app.command("show")
def show_command(
    campaign_id: str = typer.Argument(..., metavar="KAMPAGNE"),
    as_json: bool = typer.Option(False, "--json", help="Als JSON ausgeben."),
) -> None:
    """Zeigt eine Kampagne: Termine, Stufen, Fragebogen, Checkliste."""
    from efa_rollout.db import session_scope
    from efa_rollout.services import campaigns, lookup

    with session_scope() as session:
        campaign = lookup.get_campaign(session, campaign_id)
        definition = lookup.campaign_definition(campaign)
        targeted = campaigns.targeted_municipalities(session, definition, campaign.area_code)
    data = {
        "id": campaign.id,
        "title": campaign.title,
        "service": campaign.service,
        "template": campaign.template,
        "area_code": campaign.area_code,
        "area_name": campaign.area_name,
        "status": campaign.status,
        "go_live": campaign.go_live,
        "dates": campaign.dates,
        "stages": [s.value for s in definition.ordered_stages()],
        "targeted": len(targeted),
        "pilots": campaign.definition["target"].get("pilots", []),
        "questionnaire": [f.key for f in definition.questionnaire],
        "checklist": [
            {"key": i.key, "title": i.title, "due_days": i.due} for i in definition.checklist
        ],
    }
    if as_json:
        print_json(data)
        return
    typer.echo(say("cli.campaign.show_title", title=campaign.title, campaign=campaign.id))
    area = say(
        "cli.campaign.show_area",
        area=campaign.area_name,
        code=campaign.area_code,
        count=len(targeted),
    )
    typer.echo(area)
    status = CAMPAIGN_STATUS_LABELS.get(campaign.status, campaign.status)
    typer.echo(say("cli.campaign.show_status", status=status))
    typer.echo(say("cli.campaign.show_dates"))
    for key, value in campaign.dates.items():
        shown = (
            ", ".join(german_date(v) for v in value)
            if isinstance(value, list)
            else german_date(value)
        )
        typer.echo(
            f"  {say('cli.campaign.show_date', label=DATE_LABELS.get(key, key), dates=shown)}"
        )
    stages = " → ".join(s.label for s in definition.ordered_stages())
    typer.echo(say("cli.campaign.show_stages", stages=stages))
    sizes = say(
        "cli.campaign.show_sizes",
        questions=len(definition.questionnaire),
        items=len(definition.checklist),
    )
    typer.echo(sizes)


#: The campaign's key dates as `show` names them (templates/texts/domain.ini, [campaign_date]).
DATE_LABELS: Mapping[str, str] = texts.table("campaign_date")


# Running a campaign (start, tick, go-live) lives in campaign_run; registered here, in this order.
app.command("start")(campaign_run.start_command)
app.command("tick")(campaign_run.tick_command)
app.command("go-live")(campaign_run.go_live_command)


@app.command("status")
def status_command(
    campaign_id: str = typer.Argument(..., metavar="KAMPAGNE"),
    as_of: str | None = AS_OF,
    as_json: bool = typer.Option(False, "--json", help="Als JSON ausgeben."),
) -> None:
    """Zeigt, wie viele Gemeinden in welcher Stufe sind, welche, und was überfällig ist."""
    from efa_rollout.db import session_scope
    from efa_rollout.reports.rollup import campaign_rollup
    from efa_rollout.services.clock import local_today
    from efa_rollout.services.waiting import campaign_waits, flag_of

    moment = parse_as_of(as_of) or datetime.now(UTC)
    with session_scope() as session:
        rollup = campaign_rollup(session, campaign_id, as_of=moment)
        waits = campaign_waits(session, campaign_id, today=local_today(moment))
    data = rollup.to_json()
    data["waiting"] = [w.as_row() for w in waits]
    data["flag"] = flag_of(waits)
    if as_json:
        print_json(data)
        return
    title = say(
        "cli.campaign.status_title",
        title=data["title"],
        campaign=campaign_id,
        total=data["total"],
        today=german_date(rollup.today),
    )
    typer.echo(title)
    status = say("cli.campaign.status_line", status=rollup.status_label, dates=_key_dates(rollup))
    typer.echo(status)
    for entry in data["stages"].values():
        names = ", ".join(m["name"] for m in entry["municipalities"][:8])
        more = ""
        if entry["count"] > 8:
            more = " " + say("cli.campaign.stage_more", rest=entry["count"] - 8)
        row = say(
            "cli.campaign.stage_row",
            label=entry["label"],
            count=entry["count"],
            names=names,
            more=more,
        )
        typer.echo(f"  {row}")
    for key in ("paused", "not_applicable"):
        group = data[key]
        if group["count"]:
            names = ", ".join(m["name"] for m in group["municipalities"])
            label = say(f"cli.campaign.{key}")
            row = say(
                "cli.campaign.stage_row", label=label, count=group["count"], names=names, more=""
            )
            typer.echo(f"  {row}")
    lights = data["lights"]
    line = say(
        "cli.campaign.lights",
        green=lights.get("green", 0),
        yellow=lights.get("yellow", 0),
        red=lights.get("red", 0),
        overdue=len(data["overdue"]),
        failed=len(data["failed_mail"]),
        without=len(data["without_contact"]),
    )
    typer.echo(line)
    for entry in data["without_contact"]:
        line = say(
            "cli.campaign.unreachable", name=entry["name"], ags=entry["ags"], reason=entry["reason"]
        )
        typer.echo(f"  {line}")
    _echo_waits(waits, data["flag"])
    typer.echo(say("cli.campaign.details", campaign=campaign_id))


def _key_dates(rollup: Any) -> str:
    """'Go-Live: geplant 01.08.2024, erreicht von 34 (ab 01.08.2024); …' from the roll-up."""
    parts = []
    for key in rollup.key_dates:
        planned = (
            say("cli.campaign.date_planned", planned=f"{key.planned:%d.%m.%Y}")
            if key.planned
            else say("cli.campaign.date_unplanned")
        )
        reached = (
            say(
                "cli.campaign.date_reached",
                count=key.reached,
                first=f"{key.first_reached:%d.%m.%Y}",
            )
            if key.reached
            else ""
        )
        parts.append(
            say("cli.campaign.date_part", label=key.label, planned=planned, reached=reached)
        )
    return "; ".join(parts)


def _echo_waits(waits: list, flag: str | None, limit: int = 30) -> None:
    """The municipalities that cannot move and what they wait for; the flag first."""
    if flag:
        typer.echo(flag)
    stuck = [w for w in waits if w.waiting.needs_action]
    for row in stuck[:limit]:
        line = say(
            "cli.campaign.waiting_row",
            ags=row.ags,
            name=row.name,
            stage=row.stage.label,
            text=row.waiting.text,
        )
        typer.echo(f"  {line}")
    if len(stuck) > limit:
        typer.echo(f"  {say('cli.campaign.more', rest=len(stuck) - limit)}")


REASON = typer.Option(..., "--reason", help="Begründung (wird protokolliert).")


@app.command("close")
def close_command(
    campaign_id: str = typer.Argument(..., help="Kampagne."), reason: str = REASON
) -> None:
    """Schließt eine Kampagne ab: keine weiteren Mails, das Portal nur noch lesbar."""
    from efa_rollout.db import session_scope
    from efa_rollout.services import campaigns
    from efa_rollout.settings import get_settings

    with session_scope() as session:
        campaigns.close_campaign(
            session, campaign_id, now=datetime.now(UTC), actor=get_settings().actor, reason=reason
        )
    typer.echo(say("cli.campaign.closed", campaign=campaign_id, reason=reason))


@app.command("cancel")
def cancel_command(
    campaign_id: str = typer.Argument(..., help="Kampagne."), reason: str = REASON
) -> None:
    """Bricht eine Kampagne ab; noch nicht versandte Mails werden storniert."""
    from efa_rollout.db import session_scope
    from efa_rollout.services import campaigns
    from efa_rollout.settings import get_settings

    with session_scope() as session:
        _, cancelled = campaigns.cancel_campaign(
            session, campaign_id, now=datetime.now(UTC), actor=get_settings().actor, reason=reason
        )
    typer.echo(
        say("cli.campaign.cancelled", campaign=campaign_id, cancelled=cancelled, reason=reason)
    )


@app.command("delete")
def delete_command(
    campaign_id: str = typer.Argument(..., help="Kampagne."),
    yes: bool = typer.Option(False, "--yes", help="Ohne Rückfrage löschen."),
) -> None:
    """Löscht eine Kampagne, solange noch keine Mail versandt wurde (z. B. nach einem Tippfehler)."""
    if not yes and not typer.confirm(say("cli.campaign.delete_really", campaign=campaign_id)):
        raise typer.Exit(1)
    from efa_rollout.db import session_scope
    from efa_rollout.services import campaigns
    from efa_rollout.settings import get_settings

    with session_scope() as session:
        campaigns.delete_campaign(
            session, campaign_id, now=datetime.now(UTC), actor=get_settings().actor
        )
    typer.echo(say("cli.campaign.deleted", campaign=campaign_id))
