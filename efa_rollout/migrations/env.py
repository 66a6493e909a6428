"""Alembic environment: runs migrations on the engine handed over by efa_rollout.db."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import models
from efa_rollout.db import make_engine

models.load_all()  # every table on SQLModel.metadata, for autogenerate
config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:  # the `alembic` command line: take the URL from settings
        from efa_rollout.settings import get_settings

        engine = make_engine(get_settings().effective_database_url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
