"""Alembic environment: migrations run on the engine the store hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Engine

from signoff.store.schema import metadata

config = context.config
engine: Engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
