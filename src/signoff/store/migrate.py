"""Bring a database to the latest schema with Alembic (run on every store open)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

__all__ = ["alembic_config", "upgrade"]

_HERE = Path(__file__).parent


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at our migrations, bound to ``engine``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Apply every migration not yet applied; safe to call on an up-to-date database.

    ``heads``: independent lines of migrations (each from a common parent) all apply.
    """
    command.upgrade(alembic_config(engine), "heads")
