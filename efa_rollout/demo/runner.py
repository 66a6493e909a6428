"""The demo run: the timeline, step by step, through the real flows; then reports and links.

Everything a municipality does here (answers, ticks) is SIMULATED and logged as such
(source "simulation", author "Simulation (Demo)"); mail goes into the mail folder.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from efa_rollout.db import get_engine, session_scope
from efa_rollout.demo.scenario import EWA, SIMULATION, TIMELINE, VIBA, Step, moment
from efa_rollout.demo.simulation import (
    create_campaigns,
    import_contacts,
    import_directory,
    prepare_data_dir,
    simulate_answers,
    simulate_ticks,
    write_demo_contacts,
)
from efa_rollout.domain.text import german_date
from efa_rollout.services import campaigns
from efa_rollout.settings import get_settings


class DemoRunner:
    """Runs the simulated timeline through the real flows (Prefect's local mode by default)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def run(self) -> None:
        """Every step of TIMELINE: the simulated municipalities act, then the flows run."""
        from efa_rollout.cli._flows import prepare_prefect_environment

        prepare_prefect_environment()
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            for step in TIMELINE:
                self.run_step(step)

    def run_step(self, step: Step) -> None:
        """One simulated day."""
        now = moment(step.day)
        self.say(f"\n── {german_date(step.day)} · {step.title}")
        summaries = []
        for action in step.actions:
            kind, _, rest = action.partition(":")
            if kind == "start":
                self.start(rest, now)
            elif kind == "answer":
                campaign_id, _, share = rest.rpartition(":")
                self.say(
                    f"   simuliert: {simulate_answers(campaign_id, float(share), now)} Gemeinden senden ihre Rückmeldung ({campaign_id})"
                )
            elif kind == "tick_items":
                campaign_id, _, share = rest.rpartition(":")
                self.say(
                    f"   simuliert: {simulate_ticks(campaign_id, float(share), now)} Checklistenpunkte abgehakt ({campaign_id})"
                )
            elif kind == "summary":
                summaries.append(rest)
        for campaign_id in summaries:
            self.summary(campaign_id, now)
        self.go_live(now)  # applies every due transition, go-live included
        self.remind(now)
        self.deliver(now)

    def start(self, campaign_id: str, now: datetime) -> None:
        """The start-campaign flow."""
        from prefect import tags

        from efa_rollout.prefect_api import campaign_tags
        from flows.start_campaign import StartCampaignInput, start_campaign

        service = "viba" if campaign_id == VIBA else "ewa"
        with tags(*campaign_tags(campaign_id, service)):
            figures = start_campaign(params=StartCampaignInput(campaign=campaign_id, as_of=now))
        self.say(
            f"   {campaign_id} gestartet: {figures['enrolments']} Gemeinden, {figures['mails_queued']} Informationsanfragen"
        )

    def tick(self, now: datetime) -> None:
        """The tick flow over all running campaigns."""
        from flows.tick import tick

        self._report_changes(tick(as_of=now), "Tick")

    def go_live(self, now: datetime) -> None:
        """The go-live flow over all running campaigns."""
        from flows.go_live import go_live

        self._report_changes(go_live(as_of=now), "Stufen")

    def _report_changes(self, figures: dict[str, dict[str, Any]], label: str) -> None:
        for campaign_id, fig in figures.items():
            if fig["changes"] or fig["mails_queued"] or fig["blocked"]:
                self.say(
                    f"   {label} {campaign_id}: {fig['changes']} Stufenwechsel, {fig['mails_queued']} Mails"
                    + (f", {fig['blocked']} warten auf Pflichtpunkte" if fig["blocked"] else "")
                )

    def summary(self, campaign_id: str, now: datetime) -> None:
        """The coordinator closes collection and the summary goes out."""
        from flows.distribute_summary import distribute_summary

        with session_scope() as session:
            campaigns.close_collection(session, campaign_id, now=now, actor=SIMULATION)
        self.tick(now)  # everybody still collecting moves on to the summary stage
        result = distribute_summary(campaign=campaign_id, as_of=now)
        self.say(
            f"   Zusammenfassung {campaign_id}: Version {result.get('version')}, "
            f"{result.get('queued', 0)} Mails in den Postausgang"
        )

    def remind(self, now: datetime) -> None:
        """The reminder flow."""
        from flows.send_reminders import send_reminders

        result = send_reminders(as_of=now)
        self.say(f"   Erinnerungen: {_short(result)}")

    def deliver(self, now: datetime) -> None:
        """Deliver the outbox (into the mail folder when no SMTP server is configured)."""
        try:
            from flows.deliver_outbox import deliver_outbox
        except ImportError:  # the flow module is optional; the ledger does the work
            from efa_rollout.mail.delivery import deliver

            result: Any = deliver(now=now)
        else:
            result = deliver_outbox(as_of=now)
        self.say(f"   Postausgang: {_short(result)}")


def _short(result: Any) -> str:
    """Numeric figures of a flow result (dict, dataclass or a list of them), summed."""
    items = result if isinstance(result, list) else [result]
    totals: dict[str, int] = {}
    for item in items:
        values = item if isinstance(item, dict) else getattr(item, "__dict__", {})
        for key, value in values.items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return (
        ", ".join(f"{FIGURE_LABELS.get(k, k)}: {v}" for k, v in totals.items() if v)
        or "nichts zu tun"
    )


FIGURE_LABELS = {
    "evaluated": "geprüft",
    "reminders": "Erinnerungen",
    "escalations": "Eskalationen",
    "dropped": "verpasste Termine verworfen",
    "deferred": "zurückgestellt",
    "without_recipient": "ohne Empfänger",
}


def write_reports(data_dir: Path, now: datetime, say: Callable[[str], None]) -> list[Path]:
    """The status reports of both campaigns (HTML and XLSX) as of the end of the simulation."""
    try:
        from efa_rollout.reports import write_report
    except ImportError:
        say("Berichte: (Modul efa_rollout.reports noch nicht verfügbar)")
        return []
    paths = []
    for campaign_id in (VIBA, EWA):
        for fmt in ("html", "xlsx"):
            paths.append(write_report(campaign_id, fmt=fmt, out=None, as_of=now))
    return paths


def run_demo(data_dir: Path, say: Callable[[str], None]) -> None:
    """The whole demo into DATA_DIR."""
    prepare_data_dir(data_dir)
    get_engine()
    say(f"Daten: {data_dir}")
    import_directory(say)
    contacts_csv = data_dir / "demo-ansprechpersonen.csv"
    write_demo_contacts(contacts_csv)
    import_contacts(contacts_csv, say)
    create_campaigns(say)
    DemoRunner(say).run()
    end = moment(TIMELINE[-1].day)
    reports = write_reports(data_dir, end, say)
    keep_links_open(datetime.now(UTC), say)
    _closing(data_dir, reports, say)


def keep_links_open(now: datetime, say: Callable[[str], None]) -> int:
    """SIMULATED time ends long before today: the newest link per municipality stays valid.

    The demo's mails were sent in 2023–2025, so their links would all have expired (410).
    The newest live link of each campaign and municipality gets the usual validity from
    NOW, so the links in the newest mails open the portal; older ones stay expired.
    """
    from models import PortalToken

    settings = get_settings()
    until = now + timedelta(days=settings.portal_token_days)
    with session_scope() as session:
        rows = session.exec(
            select(PortalToken)
            .where(col(PortalToken.revoked_at).is_(None))
            .order_by(col(PortalToken.created_at), col(PortalToken.id))
        ).all()
        newest = {(r.campaign_id, r.ags): r for r in rows}
        for token in newest.values():
            token.expires_at = until
            session.add(token)
    say(
        f"Persönliche Links (simuliert): der neueste Link je Gemeinde und Kampagne "
        f"({len(newest)}) bleibt bis {until.astimezone(settings.zone):%d.%m.%Y} gültig."
    )
    return len(newest)


def _closing(data_dir: Path, reports: list[Path], say: Callable[[str], None]) -> None:
    mail_dir = get_settings().effective_mail_dir
    mails = len(list(mail_dir.glob("*.eml"))) if mail_dir.exists() else 0
    say("\nFertig. Hier sehen Sie sich um:")
    say(f"  Mails ({mails} Dateien):   {mail_dir}")
    for path in reports:
        say(f"  Bericht:               {path}")
    say(f"  Datenbank:             {get_settings().effective_database_url}")
    say(
        f"\nDie Befehle beziehen sich auf diese Daten, wenn Sie vorher setzen:\n  export EFA_DATA_DIR={data_dir}"
    )
    for command in (
        f"efa campaign status {EWA}",
        f"efa campaign show {VIBA}",
        "efa mail outbox --status sent",
        f"efa report {EWA} --format html --as-of 2025-01-02",
        "efa municipalities list --district 08136",
    ):
        say(f"  .venv/bin/{command}")
