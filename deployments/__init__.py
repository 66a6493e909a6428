"""Prefect deployments of efa-rollout: schedules in Europe/Berlin, served by `efa serve`."""
