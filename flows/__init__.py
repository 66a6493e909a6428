"""Prefect flows: the order of steps and the artifacts; the work runs in `services.orchestration` through `tasks/`."""
