"""Use cases: what the CLI, flows and portal do, without Prefect, Typer or Starlette."""
