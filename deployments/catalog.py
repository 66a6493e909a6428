"""The deployment catalogue: which flow runs when, with which parameters and tags."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

TIMEZONE = "Europe/Berlin"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: a flow (module:function), its cron schedules and default parameters."""

    name: str
    entrypoint: str
    description: str
    crons: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ("efa-rollout",)

    def load_flow(self) -> Any:
        """Import the flow object."""
        module_name, _, attribute = self.entrypoint.partition(":")
        return getattr(importlib.import_module(module_name), attribute)


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
)


def build_deployments(*, only: set[str] | None = None) -> list[Any]:
    """RunnerDeployments for `prefect.serve`, with cron schedules in Europe/Berlin."""
    from prefect.schedules import Cron

    deployments = []
    for spec in CATALOG:
        if only and spec.name not in only:
            continue
        flow = spec.load_flow()
        deployments.append(
            flow.to_deployment(
                name=spec.name,
                description=spec.description,
                schedules=[Cron(cron, timezone=TIMEZONE) for cron in spec.crons],
                parameters=spec.parameters,
                tags=list(spec.tags),
            )
        )
    return deployments
