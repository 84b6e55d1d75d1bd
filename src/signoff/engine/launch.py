"""The task launcher: from a ready command task run to the ``TaskExecution`` an executor runs.

It renders the command and params (``{{ }}`` over the task run's params, its run, its
folders) and builds the environment a command learns the rest from. It does no folder I/O:
the ``TaskExecution`` names the code snapshot, the upstream outputs (as ``ArtifactRef``s) and
whether the attempt is a retry, and the executor builds the working folder from it
(``signoff.executors.materialise``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signoff.domain.ports import TaskExecution
from signoff.domain.ports_execution import ArtifactRef
from signoff.domain.records import RunRecord, TaskRunRecord
from signoff.domain.specs import TaskSpec
from signoff.engine.workdir import env_key, input_map, output_of
from signoff.spec.templates import render, task_slug

__all__ = ["Rendered", "render_task", "task_execution"]


@dataclass(frozen=True, slots=True)
class Rendered:
    """A task run's command and params with their templates filled in."""

    command: str | None
    params: dict[str, Any]


def _is_fresh(tr: TaskRunRecord) -> bool:
    return tr.attempt == 0 and not tr.result


def render_task(run: RunRecord, task: TaskSpec, tr: TaskRunRecord) -> Rendered:
    """Fill in the command's and the params' templates; a bad one raises ``SignoffError``."""
    work = Path(tr.work_dir)
    variables: dict[str, object] = {
        **tr.params,
        "run_id": run.id,
        "task": task.name,
        "output_dir": str(work / "output"),
        "inputs": str(work / "inputs"),
    }
    command = render(task.command, variables) if task.command else None
    params = {
        k: render(v, variables) if isinstance(v, str) and "{{" in v else v
        for k, v in tr.params.items()
    }
    return Rendered(command, params)


def task_execution(
    run: RunRecord,
    task: TaskSpec,
    tr: TaskRunRecord,
    rendered: Rendered,
    by_task: Mapping[str, list[TaskRunRecord]],
) -> TaskExecution:
    """What the executor needs to run the task run: command or callable, env, folders."""
    work = Path(tr.work_dir)
    env = {"SIGNOFF_RUN_ID": run.id, "SIGNOFF_TASK": task.name, "SIGNOFF_TASK_RUN_ID": tr.id}
    if task.call is None:  # a command learns the rest from its environment
        env.update(
            {
                "SIGNOFF_PARAMS": json.dumps(rendered.params, default=str),
                "SIGNOFF_OUTPUT_DIR": str(work / "output"),
                "SIGNOFF_INPUTS_DIR": str(work / "inputs"),
                "SIGNOFF_RECORDS_FILE": str(work / "records.jsonl"),
                **{f"SIGNOFF_PARAM_{env_key(k)}": str(v) for k, v in rendered.params.items()},
                **dict(task.env),
            }
        )
    return TaskExecution(
        task_run_id=tr.id,
        command=rendered.command or "",
        work_dir=work,
        env=env,
        cpu=task.resources.cpu,
        gpu=task.resources.gpu,
        memory_mb=task.resources.memory_mb,
        custom=task.resources.custom,
        executor=task.resources.executor,
        timeout=task.timeout,
        call=task.call,
        params=rendered.params,
        inputs=input_map(task, by_task) if task.call is not None else {},
        code=str(Path(run.work_dir) / "code"),
        input_refs=_input_refs(task, by_task),
        output_link=task.output_dir,
        fresh=_is_fresh(tr),
    )


def _input_refs(
    task: TaskSpec, by_task: Mapping[str, list[TaskRunRecord]]
) -> tuple[ArtifactRef, ...]:
    """The upstream outputs, as references a worker can fetch them by."""
    return tuple(
        ArtifactRef(name, task_slug(name), str(output_of(up)), up.index if len(ups) > 1 else -1)
        for name in task.depends_on
        for ups in [by_task[name]]
        for up in ups
    )
