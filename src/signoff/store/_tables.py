"""Table definitions; Alembic migrations under ``migrations/`` must produce exactly these."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

flows = Table(
    "flows",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("name", String(200), nullable=False, index=True),
    Column("spec", JSON, nullable=False),
    Column("source", Text, nullable=True),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("flow_name", String(200), nullable=False, index=True),
    Column("flow_hash", String(64), ForeignKey("flows.hash"), nullable=False),
    Column("state", String(32), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("params", JSON, nullable=False),
    Column("started_by", String(200), nullable=False),
    Column("work_dir", Text, nullable=False),
    Column("created_at", Float, nullable=False, index=True),
    Column("updated_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Column("reason", Text, nullable=True),
    # the process driving the run holds a lease it renews; an expired lease may be taken over
    Column("lease_owner", String(200), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    # what it ran with: code version, environment, seeds, what it reproduces
    Column("facts", JSON, nullable=True),
)

task_runs = Table(
    "task_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False, index=True),
    Column("task_name", String(200), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("params", JSON, nullable=False),
    Column("state", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("work_dir", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("reason", Text, nullable=True),
    Column("result", JSON, nullable=False),
    Column("not_before", Float, nullable=True),
    Column("cache_key", String(64), nullable=True, index=True),
    UniqueConstraint("run_id", "task_name", "idx", name="uq_task_runs_run_task_idx"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("task_run_id", String(32), ForeignKey("task_runs.id"), primary_key=True),
    Column("path", String(1000), primary_key=True),
    Column("sha256", String(64), nullable=False, index=True),
    Column("size", Integer, nullable=False),
)

transitions = Table(
    "transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False, index=True),
    Column("entity", String(16), nullable=False),
    Column("entity_id", String(32), nullable=False),
    Column("from_state", String(32), nullable=True),
    Column("to_state", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Column("reason", Text, nullable=True),
    Column("actor", String(200), nullable=True),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_run_id", String(32), ForeignKey("task_runs.id"), nullable=False, index=True),
    Column("key", String(200), nullable=False),
    Column("value", Float, nullable=False),
    Column("step", Integer, nullable=True),
    Column("at", Float, nullable=False),
)

logged = Table(
    "logged",
    metadata,
    Column("task_run_id", String(32), ForeignKey("task_runs.id"), primary_key=True),
    Column("kind", String(16), primary_key=True),  # "param" or "tag"
    Column("key", String(200), primary_key=True),
    Column("value", JSON, nullable=True),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("path", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("signature", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False, index=True),
    Column("task_run_id", String(32), ForeignKey("task_runs.id"), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("model_version_id", String(32), ForeignKey("model_versions.id"), nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, index=True),
    Column("alias", String(64), nullable=False),
    Column("model_version_id", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", Float, nullable=False),
    Column("reason", Text, nullable=False),
)

gates = Table(
    "gates",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False, index=True),
    Column("task_run_id", String(32), ForeignKey("task_runs.id"), nullable=False, unique=True),
    Column("targets", JSON, nullable=False),
    Column("quorum", String(16), nullable=False),
    Column("allow_self_approval", Boolean, nullable=False),
    Column("require_comment_on_reject", Boolean, nullable=False),
    Column("started_by", String(200), nullable=False),
    Column("model_version_id", String(32), nullable=True),
    Column("model_digest", String(64), nullable=True),
    Column("report_digest", String(64), nullable=True),
    Column("report_path", Text, nullable=True),
    Column("opened_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("gate_id", String(32), ForeignKey("gates.id"), nullable=False, index=True),
    Column("actor", String(200), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("comment", Text, nullable=True),
    Column("channel", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Column("model_digest", String(64), nullable=True),
    Column("report_digest", String(64), nullable=True),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("url", Text, nullable=False),
    Column("port", Integer, nullable=False),
    Column("pid", Integer, nullable=True),
    Column("model_version_id", String(32), nullable=True),
    Column("state", String(32), nullable=False),
    Column("updated_at", Float, nullable=False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("endpoint", String(200), nullable=False, index=True),
    Column("model_version_id", String(32), nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("gate_id", String(32), nullable=True),
    Column("deployed_by", String(200), nullable=False),
    Column("at", Float, nullable=False),
    # rollover | canary | promote | rollback | auto-rollback (0004)
    Column("kind", String(32), nullable=False, server_default="rollover"),
    Column("traffic", Integer, nullable=False, server_default="100"),
    Column("previous_model_version_id", String(32), nullable=True),
    Column("reason", Text, nullable=True),
    Column("max_error_rate", Float, nullable=True),
    Column("override", Text, nullable=True),  # break-glass reason (0008)
)

Index("ix_task_runs_state", task_runs.c.state)

# Sampled predictions of endpoint processes, written in batches off the request path (0004).
predictions = Table(
    "predictions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("endpoint", String(200), nullable=False, index=True),
    Column("model_version", String(200), nullable=False),
    Column("at", Float, nullable=False, index=True),
    Column("inputs", JSON, nullable=False),
    Column("output", JSON, nullable=True),
    Column("latency_ms", Float, nullable=False),
)

# Ground-truth labels for logged predictions; append-only (0004).
feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prediction_id", String(32), ForeignKey("predictions.id"), nullable=False, index=True),
    Column("label", JSON, nullable=False),
    Column("at", Float, nullable=False),
)
