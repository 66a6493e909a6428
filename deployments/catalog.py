"""The deployment catalogue: which flow runs when, with which parameters and tags."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from efa_rollout.prefect_api import MAIL_EVENT, PROGRESS_EVENT

TIMEZONE = "Europe/Berlin"
#: Seconds an event trigger collects further events before its run starts (debounce): a run
#: starts this long after the first event and covers every event of that window.
DEBOUNCE_SECONDS = 5


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: a flow (module:function), its cron schedules and default parameters."""

    name: str
    entrypoint: str
    description: str
    crons: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ("efa-rollout",)
    #: Event triggers: (event name, resource id pattern, parameters) – debounced per resource.
    on_events: tuple[tuple[str, str, dict[str, Any]], ...] = ()

    @property
    def module(self) -> str:
        """The flow's module."""
        return self.entrypoint.partition(":")[0]

    def load_flow(self) -> Any:
        """Import the flow object."""
        return getattr(importlib.import_module(self.module), self.entrypoint.partition(":")[2])


CATALOG: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        "kampagne-starten",
        "flows.start_campaign:start_campaign",
        "Kampagne starten: Gemeinden aufnehmen und die Informationsanfrage versenden.",
    ),
    DeploymentSpec(
        "tick",
        "flows.tick:tick",
        "Stündlich an Arbeitstagen: alle Gemeinden prüfen und fällige Stufenwechsel ausführen.",
        crons=("5 7-17 * * 1-5",),
        # A municipality that completes its part moves on within a minute, not at the next hour.
        on_events=(
            (PROGRESS_EVENT, "efa.campaign.*", {"campaign": "{{ event.payload.campaign }}"}),
        ),
    ),
    DeploymentSpec(
        "go-live",
        "flows.go_live:go_live",
        "Täglich: Gemeinden an ihrem Go-Live-Datum live schalten, Go-Live-Mitteilung versenden.",
        crons=("30 6 * * *",),
    ),
    DeploymentSpec(
        "erinnerungen",
        "flows.send_reminders:send_reminders",
        "Arbeitstags um 08:00: Erinnerungen und Eskalationen in den Postausgang stellen.",
        crons=("0 8 * * 1-5",),
    ),
    DeploymentSpec(
        "postausgang-zustellen",
        "flows.deliver_outbox:deliver_outbox",
        "Alle fünf Minuten: den Postausgang zustellen (Wiederholungen mit Wartezeit).",
        crons=("*/5 * * * *",),
        on_events=((MAIL_EVENT, "efa.outbox", {}),),
    ),
    DeploymentSpec(
        "unzustellbar-auswerten",
        "flows.process_bounces:process_bounces",
        "Alle 15 Minuten: Unzustellbarkeitsmeldungen lesen, Adressen sperren, Gemeinden ohne "
        "erreichbare Ansprechperson melden.",
        crons=("*/15 * * * *",),
    ),
    DeploymentSpec(
        "zusammenfassung-verteilen",
        "flows.distribute_summary:distribute_summary",
        "Zusammenfassung erstellen und an alle teilnehmenden Gemeinden versenden.",
    ),
    DeploymentSpec(
        "zusammenfassung-nach-plan",
        "flows.release_summary:release_summaries",
        "Arbeitstags um 07:15: Zusammenfassungen am geplanten Tag versenden (nach Freigabe, "
        "wenn die Kampagne sie verlangt); wer wartet worauf.",
        crons=("15 7 * * 1-5",),
    ),
    DeploymentSpec(
        "rueckmeldung-erfassen",
        "flows.record_response:record_response",
        "Rückmeldung erfassen: Antworten oder Checklistenpunkte einer Gemeinde eintragen.",
    ),
    DeploymentSpec(
        "wochenbericht",
        "flows.weekly_report:weekly_report",
        "Montags um 07:00: Sachstandsbericht je Kampagne an die Koordination.",
        crons=("0 7 * * 1",),
    ),
    DeploymentSpec(
        "aufraeumen",
        "flows.housekeeping:housekeeping",
        "Täglich um 03:30: gespeicherte Laufergebnisse löschen, die älter als "
        "EFA_PREFECT_RESULTS_KEEP_DAYS sind (Standard 14 Tage).",
        crons=("30 3 * * *",),
    ),
)


def spec_named(name: str) -> DeploymentSpec:
    """The catalogue entry NAME."""
    return next(spec for spec in CATALOG if spec.name == name)


def event_triggers(spec: DeploymentSpec) -> list[Any]:
    """Deployment triggers of SPEC: one run per burst of events and resource (campaign)."""
    from prefect.events import DeploymentEventTrigger
    from prefect.events.schemas.automations import Posture

    window = timedelta(seconds=DEBOUNCE_SECONDS)
    return [
        DeploymentEventTrigger(
            name=f"{spec.name}-bei-{name.rsplit('.', 1)[-1]}",
            description=f"Startet »{spec.name}« nach dem Ereignis {name} (gebündelt je Ressource).",
            expect={name},
            match={"prefect.resource.id": resource},
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=window,
            # Fires at the first event and ignores the rest of the window; starting the run
            # after the window makes it see every change of that window.
            schedule_after=window,
            parameters=parameters or None,
        )
        for name, resource, parameters in spec.on_events
    ]


def deployment_options(spec: DeploymentSpec) -> dict[str, Any]:
    """SPEC as keyword arguments of `Runner.add_flow` (and `flow.to_deployment`): cron schedules
    in Europe/Berlin, event triggers."""
    from prefect.schedules import Cron

    return {
        "name": spec.name,
        "description": spec.description,
        "schedules": [Cron(cron, timezone=TIMEZONE) for cron in spec.crons],
        "parameters": spec.parameters,
        "tags": list(spec.tags),
        "triggers": event_triggers(spec),
        # Re-activate the schedules on every start: a stopped `serve` may have paused them
        # (PrefectHQ/prefect#16363), and re-registering keeps "paused" otherwise.
        "paused": False,
    }


def served_specs(only: set[str] | None = None) -> list[DeploymentSpec]:
    """The catalogue, or the entries named in ONLY."""
    return [spec for spec in CATALOG if not only or spec.name in only]
