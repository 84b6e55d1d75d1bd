"""The cache policy: when a task run may reuse an earlier one's outputs instead of running.

Two task runs are interchangeable when their rendered command (or callable), params, the
run's code snapshot and their inputs' contents are the same (:func:`cache_key`). A reuse
links the earlier output folder and copies its records (params, metrics, tags, artifacts,
model versions) onto the new task run, written with its success in one transaction.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signoff.domain.ports import Store
from signoff.domain.records import RunRecord, TaskOutputs, TaskRunRecord
from signoff.domain.specs import TaskSpec
from signoff.engine.artifacts import cache_key, code_fingerprint, folder_fingerprint

__all__ = ["CachePolicy", "Reuse"]


@dataclass(frozen=True, slots=True)
class Reuse:
    """An earlier task run whose outputs a task run takes as its own."""

    earlier: TaskRunRecord
    outputs: TaskOutputs


@dataclass
class CachePolicy:
    """Cache keys and lookups for the task runs of one run."""

    store: Store
    run: RunRecord
    new_id: Callable[[], str]
    _code_digest: str | None = None

    def key(
        self,
        task: TaskSpec,
        command: str | None,
        params: Mapping[str, Any],
        by_task: Mapping[str, list[TaskRunRecord]],
    ) -> str:
        """The task run's cache key (the code snapshot is hashed once per run)."""
        if self._code_digest is None:
            self._code_digest = code_fingerprint(Path(self.run.work_dir) / "code")
        inputs = {
            f"{up.task_name}[{up.index}]": folder_fingerprint(self.store.list_artifacts(up.id))
            for name in task.depends_on
            for up in by_task[name]
        }
        return cache_key(
            command=command, call=task.call, params=params, code=self._code_digest, inputs=inputs
        )

    def reuse(self, tr: TaskRunRecord, key: str, now: float) -> Reuse | None:
        """Link an earlier task run's outputs with this key into ``tr``'s folder, if any."""
        earlier = self.store.find_cached(key)
        if earlier is None:
            return None
        source = Path(earlier.work_dir) / "output"
        if not source.is_dir():
            return None
        output = Path(tr.work_dir) / "output"
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.is_symlink():
            output.unlink()
        shutil.rmtree(output, ignore_errors=True)
        output.symlink_to(source.resolve(), target_is_directory=True)
        return Reuse(earlier, self._outputs_of(earlier, tr, now))

    def _outputs_of(self, earlier: TaskRunRecord, tr: TaskRunRecord, now: float) -> TaskOutputs:
        """The earlier task run's records, as the reusing task run's."""
        store = self.store
        models = [
            dataclasses.replace(
                mv, id=self.new_id(), run_id=self.run.id, task_run_id=tr.id, created_at=now
            )
            for mv in store.model_versions_of(earlier.id)
        ]
        return TaskOutputs(
            params=store.logged_params(earlier.id),
            metrics=[
                dataclasses.replace(m, task_run_id=tr.id) for m in store.list_metrics([earlier.id])
            ],
            tags=store.logged_tags(earlier.id),
            artifacts=[
                dataclasses.replace(a, task_run_id=tr.id) for a in store.list_artifacts(earlier.id)
            ],
            models=models,
        )
