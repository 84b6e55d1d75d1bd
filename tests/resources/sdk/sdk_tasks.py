"""Python tasks for the SDK tests, imported as ``sdk_tasks`` (tests add this folder to sys.path).

The flows are built by functions of this module, so their folder (this one) is what a run
snapshots, and every ``call`` is ``sdk_tasks:<function>``.
"""

from __future__ import annotations

import signoff
from signoff import Flow, task


@task(kind="data", retries=1)
def prepare(seed: int) -> None:
    """Write the data the trainers read."""
    signoff.log_metric("rows", 3)
    (signoff.output_dir() / "data.txt").write_text(f"seed={seed}")


@task(name="train", params={"quality": [2, 7, 5]}, resources={"cpu": 1})
def train_model(quality: int, seed: int) -> float:
    """A stand-in trainer: its score grows with ``quality``."""
    data = signoff.input_dir("prepare") / "data.txt"
    signoff.log_param("data", data.read_text())
    score = quality / 10
    signoff.log_metric("score", score)
    signoff.log_metric("seed_seen", seed)
    return score


@task
def publish() -> None:
    """Runs after the gate."""
    signoff.log_tag("published", "yes")


@task
def explode() -> None:
    """Always fails."""
    raise RuntimeError("the warehouse is closed")


def review_flow() -> Flow:
    """prepare -> train (a grid of 3) -> pick (best score) -> sign-off (gate) -> publish."""
    flow = Flow("sdk-review", params={"seed": 7})
    data = flow.add(prepare)
    trained = flow.add(train_model, after=[data])
    best = {"tag_key": "score", "objective": "max", "target": 0.1}
    pick = flow.select("pick", after=[trained], conditions=[best])
    gate = flow.gate("sign-off", target=["alice", "bob"], after=[pick])
    flow.add(publish, after=[gate])
    return flow


def failing_flow() -> Flow:
    """prepare -> explode -> publish: the run fails at ``explode``."""
    flow = Flow("sdk-failing", params={"seed": 1})
    data = flow.add(prepare)
    boom = flow.add(explode, after=data)
    flow.add(publish, after=boom)
    return flow
