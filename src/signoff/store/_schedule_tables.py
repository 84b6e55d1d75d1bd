"""Tables of schedules and triggers: the flows the scheduler knows, and every firing.

A firing is recorded under a unique key (``schedule:FLOW@TIME``, ``trigger:FLOW#RULE#N``,
``webhook:FLOW#KEY``) before its run is started: two schedulers, or one restarted after a
crash, cannot record the same firing twice, so each scheduled time starts at most one run.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, String, Table, Text

from signoff.store._tables import metadata

schedules = Table(
    "schedules",
    metadata,
    Column("flow", String(200), primary_key=True),
    Column("cron", String(200), nullable=True),  # null: a flow started by triggers only
    Column("timezone", String(64), nullable=False),
    Column("catchup", String(16), nullable=False),
    Column("overlap", String(16), nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("next_at", Float, nullable=True),  # the next scheduled time not yet handled
    Column("flow_path", Text, nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("triggers", JSON, nullable=False),  # [{origin, **TriggerSpec}]
    Column("trigger_state", JSON, nullable=False),  # {trigger id: what it remembers}
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

firings = Table(
    "firings",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("flow", String(200), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("fired_at", Float, nullable=False),
    Column("scheduled_at", Float, nullable=True),
    Column("trigger_id", String(64), nullable=True, index=True),
    Column("run_id", String(32), nullable=True, index=True),
    Column("evidence", JSON, nullable=False),
    Column("reason", Text, nullable=True),
    Column("owner", String(200), nullable=True),  # the scheduler starting its run
    Column("claimed_at", Float, nullable=True),
)
