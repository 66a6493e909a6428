"""Use cases: what the application does, without Prefect, Typer or Starlette."""
