"""Store parts for models and endpoints: versions, aliases, deployments, the prediction log."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from signoff.domain.records import (
    DeploymentRecord,
    EndpointRecord,
    FeedbackRecord,
    ModelVersionRecord,
    PredictionRecord,
)
from signoff.errors import NotFoundError
from signoff.store import _rows as rows
from signoff.store import _tables as t
from signoff.store._base import SqlBase

__all__ = ["RegistryStore"]


class RegistryStore(SqlBase):
    """Model versions and aliases, endpoints and their deployments, predictions and labels."""

    # ---------------------------------------------------------------------- registry
    def next_model_version(self, name: str) -> int:
        q = sa.select(sa.func.max(t.model_versions.c.version)).where(
            t.model_versions.c.name == name
        )
        with self.engine.connect() as conn:
            current = conn.execute(q).scalar()
        return int(current or 0) + 1

    def add_model_version(self, record: ModelVersionRecord) -> ModelVersionRecord:
        with self._tx() as conn:
            conn.execute(t.model_versions.insert().values(**dataclasses.asdict(record)))
        return record

    def get_model_version(self, model_version_id: str) -> ModelVersionRecord:
        q = sa.select(t.model_versions).where(t.model_versions.c.id == model_version_id)
        return rows.MODEL_VERSION(self._one(q, f"model version {model_version_id}"))

    def model_versions_of(self, task_run_id: str) -> list[ModelVersionRecord]:
        q = (
            sa.select(t.model_versions)
            .where(t.model_versions.c.task_run_id == task_run_id)
            .order_by(t.model_versions.c.created_at)
        )
        return rows.MODEL_VERSION.many(self._all(q))

    def list_model_versions(self, name: str | None = None) -> list[ModelVersionRecord]:
        q = sa.select(t.model_versions).order_by(
            t.model_versions.c.name, t.model_versions.c.version
        )
        if name is not None:
            q = q.where(t.model_versions.c.name == name)
        return rows.MODEL_VERSION.many(self._all(q))

    def set_alias(
        self, name: str, alias: str, model_version_id: str, *, actor: str, at: float, reason: str
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                t.model_aliases.delete().where(
                    t.model_aliases.c.name == name, t.model_aliases.c.alias == alias
                )
            )
            conn.execute(
                t.model_aliases.insert().values(
                    name=name, alias=alias, model_version_id=model_version_id
                )
            )
            conn.execute(
                t.alias_history.insert().values(
                    name=name,
                    alias=alias,
                    model_version_id=model_version_id,
                    actor=actor,
                    at=at,
                    reason=reason,
                )
            )

    def alias_history(self, name: str) -> list[dict[str, Any]]:
        """Every move of every alias of a model: who, when, why; oldest first."""
        q = (
            sa.select(t.alias_history)
            .where(t.alias_history.c.name == name)
            .order_by(t.alias_history.c.id)
        )
        return [dict(r._mapping) for r in self._all(q)]

    def aliases(self, name: str) -> dict[str, str]:
        q = sa.select(t.model_aliases).where(t.model_aliases.c.name == name)
        return {r.alias: r.model_version_id for r in self._all(q)}

    # --------------------------------------------------------------------- endpoints
    def get_endpoint(self, name: str) -> EndpointRecord | None:
        found = self._all(sa.select(t.endpoints).where(t.endpoints.c.name == name))
        return rows.ENDPOINT(found[0]) if found else None

    def list_endpoints(self) -> list[EndpointRecord]:
        return rows.ENDPOINT.many(self._all(sa.select(t.endpoints).order_by("name")))

    def save_endpoint(self, endpoint: EndpointRecord) -> None:
        with self._tx() as conn:
            conn.execute(t.endpoints.delete().where(t.endpoints.c.name == endpoint.name))
            conn.execute(t.endpoints.insert().values(**dataclasses.asdict(endpoint)))

    def add_deployment(self, deployment: DeploymentRecord) -> None:
        with self._tx() as conn:
            conn.execute(t.deployments.insert().values(**dataclasses.asdict(deployment)))

    def list_deployments(self, endpoint: str) -> list[DeploymentRecord]:
        q = (
            sa.select(t.deployments)
            .where(t.deployments.c.endpoint == endpoint)
            .order_by(t.deployments.c.at)
        )
        return rows.DEPLOYMENT.many(self._all(q))

    # ------------------------------------------------------- prediction log, feedback
    def add_predictions(self, predictions: Sequence[PredictionRecord]) -> None:
        """Append logged predictions (one batch, one transaction)."""
        if predictions:
            with self._tx() as conn:
                conn.execute(t.predictions.insert(), [dataclasses.asdict(p) for p in predictions])

    def list_predictions(self, endpoint: str, limit: int = 100) -> list[PredictionRecord]:
        """The latest logged predictions of an endpoint, newest first."""
        q = (
            sa.select(t.predictions)
            .where(t.predictions.c.endpoint == endpoint)
            .order_by(t.predictions.c.at.desc())
            .limit(limit)
        )
        return rows.PREDICTION.many(self._all(q))

    def add_feedback(self, feedback: FeedbackRecord) -> None:
        """Store a label for a logged prediction; NotFoundError when the id is unknown."""
        with self._tx() as conn:
            known = conn.execute(
                sa.select(t.predictions.c.id).where(t.predictions.c.id == feedback.prediction_id)
            ).first()
            if known is None:
                raise NotFoundError(f"no prediction {feedback.prediction_id!r}")
            conn.execute(t.feedback.insert().values(**dataclasses.asdict(feedback)))

    def list_feedback(self, prediction_ids: Sequence[str]) -> list[FeedbackRecord]:
        """Labels given for these predictions, oldest first."""
        q = (
            sa.select(t.feedback)
            .where(t.feedback.c.prediction_id.in_(list(prediction_ids)))
            .order_by(t.feedback.c.id)
        )
        return rows.FEEDBACK.many(self._all(q))
