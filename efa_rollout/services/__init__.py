"""The use-case layer: what the coordinator, the portal and the flows do, as plain functions.

Each module is one topic (campaigns, enrolment, progression, overrides, answers, checklist,
contacts, reminders, summary, outbox, links, lookup, orchestration, history). Functions take a
session or an engine and return plain results; nothing here imports Prefect, Typer or Starlette,
so the CLI (`--no-prefect`), the portal and the Prefect tasks all run the same code.
"""
