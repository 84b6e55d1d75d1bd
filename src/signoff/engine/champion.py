"""The select task's champion check: does the winner beat the model now in production?

With ``evaluate`` the flow's own command scores both models on the winner's held-out data
(``{{ model }}``, ``{{ digest }}``; inputs as the winner had them), so they are compared on
the same data. Without it, the metrics each model logged when it was trained are compared,
and the result says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from signoff.domain.ports import Store
from signoff.domain.records import ModelVersionRecord, RunRecord, TaskRunRecord
from signoff.domain.specs import TaskSpec
from signoff.errors import SignoffError
from signoff.spec.templates import render
from signoff.tracking.records import parse_records

__all__ = ["SelectionRefusedError", "check_champion"]

_EVALUATE_TIMEOUT = 1800


class SelectionRefusedError(SignoffError):
    """The winner does not beat the champion: the run stops before the gate."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


def check_champion(
    store: Store,
    run: RunRecord,
    task: TaskSpec,
    tr: TaskRunRecord,
    winner: TaskRunRecord,
    challenger: ModelVersionRecord,
) -> dict[str, Any]:
    """The comparison record; raises SelectionRefusedError when the winner falls short."""
    check = task.champion_check
    assert check is not None
    condition = task.conditions[0]
    metric = condition.tag_key
    champion_id = store.aliases(challenger.name).get("champion")
    if champion_id is None or champion_id == challenger.id:
        return {
            "metric": metric,
            "challenger": dict(challenger.metrics),
            "champion": None,
            "challenger_label": challenger.label,
            "champion_label": None,
            "same_holdout": False,
            "passed": True,
            "note": "no model in production: nothing to beat",
        }
    champion = store.get_model_version(champion_id)
    if check.evaluate:
        work = Path(tr.work_dir)
        mine = _evaluate(check.evaluate, challenger, run, winner, work / "evaluate-challenger")
        theirs = _evaluate(check.evaluate, champion, run, winner, work / "evaluate-champion")
        same = True
    else:
        mine, theirs, same = dict(challenger.metrics), dict(champion.metrics), False
    if metric not in mine or metric not in theirs:
        raise SignoffError(f"the champion check needs {metric} for both models")
    delta = mine[metric] - theirs[metric]
    gain = delta if condition.objective == "max" else -delta
    passed = gain >= check.min_improvement
    result = {
        "metric": metric,
        "objective": condition.objective,
        "challenger": mine,
        "champion": theirs,
        "challenger_label": challenger.label,
        "champion_label": champion.label,
        "delta": delta,
        "min_improvement": check.min_improvement,
        "same_holdout": same,
        "passed": passed,
    }
    if not passed:
        basis = "on the same held-out data" if same else "as each model logged it"
        raise SelectionRefusedError(
            f"{challenger.label} does not beat the champion {champion.label} on {metric} "
            f"{basis}: {mine[metric]:.4f} vs {theirs[metric]:.4f} "
            f"(needs {check.min_improvement:+g})",
            result,
        )
    return result


def _evaluate(
    template: str,
    model: ModelVersionRecord,
    run: RunRecord,
    winner: TaskRunRecord,
    folder: Path,
) -> dict[str, float]:
    folder.mkdir(parents=True, exist_ok=True)
    code = Path(run.work_dir) / "code"
    if code.is_dir():
        for entry in code.iterdir():
            link = folder / entry.name
            if not (link.exists() or link.is_symlink()):
                link.symlink_to(entry)
    inputs = Path(winner.work_dir) / "inputs"
    records = folder / "records.jsonl"
    records.unlink(missing_ok=True)
    command = render(
        template,
        {
            **run.params,
            "model": model.path,
            "digest": model.digest,
            "inputs": str(inputs),
            "run_id": run.id,
            "task": "evaluate",
            "output_dir": str(folder / "output"),
        },
    )
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "SIGNOFF_RUN_ID": run.id,
        "SIGNOFF_INPUTS_DIR": str(inputs),
        "SIGNOFF_OUTPUT_DIR": str(folder / "output"),
        "SIGNOFF_RECORDS_FILE": str(records),
    }
    with (folder / "stdout.log").open("wb") as log:
        proc = subprocess.run(  # noqa: S602 - the flow's own command line, like any task
            command,
            shell=True,
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=_EVALUATE_TIMEOUT,
            check=False,
        )
    if proc.returncode != 0:
        tail = (folder / "stdout.log").read_text(errors="replace").strip().splitlines()[-2:]
        raise SignoffError(
            f"evaluating {model.label} failed (exit {proc.returncode}): {' | '.join(tail)}"
        )
    logged = parse_records(records)
    return logged.final_metrics()
