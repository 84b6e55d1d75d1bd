"""The recsys reference example: its four task scripts run for real, wired like the runner does.

Each script runs as a subprocess in its own folder with ``SIGNOFF_OUTPUT_DIR``,
``SIGNOFF_INPUTS_DIR`` (``inputs/<upstream>`` symlinked to the upstream's output) and
``SIGNOFF_RECORDS_FILE`` set, at a small size (300 users, 80 items) to stay quick.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("xgboost")
pytest.importorskip("skops")

from signoff.registry.flavors import META_FILE, folder_digest, load_model

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "recsys"
N_USERS, N_ITEMS, SEED = 300, 80, 7
IMPRESSIONS = 30


@dataclass(frozen=True)
class Step:
    """One task run of the example: its folder, output folder, records and process result."""

    folder: Path
    output: Path
    records: list[dict[str, Any]]
    proc: subprocess.CompletedProcess[str]

    def metrics(self) -> dict[str, float]:
        return {r["key"]: r["value"] for r in self.records if r["kind"] == "metric"}

    def params(self) -> dict[str, Any]:
        return {r["key"]: r["value"] for r in self.records if r["kind"] == "param"}

    def tags(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.records if r["kind"] == "tag"}


def run_step(
    root: Path,
    name: str,
    script: str,
    *args: str,
    upstream: tuple[str, Step] | None = None,
    check: bool = True,
) -> Step:
    """Run one example script the way the runner does: own folder, inputs, env variables."""
    folder = root / name
    inputs = folder / "inputs"
    inputs.mkdir(parents=True)
    if upstream is not None:
        slug, step = upstream
        (inputs / slug).symlink_to(step.output, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env.update(
        SIGNOFF_OUTPUT_DIR=str(folder / "output"),
        SIGNOFF_INPUTS_DIR=str(inputs),
        SIGNOFF_RECORDS_FILE=str(folder / "records.jsonl"),
        SIGNOFF_TASK=name,
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p),
    )
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / script), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    records_file = folder / "records.jsonl"
    records = (
        [json.loads(line) for line in records_file.read_text().splitlines()]
        if records_file.exists()
        else []
    )
    return Step(folder, folder / "output", records, proc)


def generate(root: Path, name: str = "ingest", seed: int = SEED) -> Step:
    return run_step(
        root,
        name,
        "generate.py",
        *("--users", str(N_USERS), "--items", str(N_ITEMS), "--seed", str(seed)),
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Step]:
    """ingest -> preprocess -> (train-xgb max_depth 3, train-forest n_estimators 40)."""
    root = tmp_path_factory.mktemp("recsys")
    ingest = generate(root)
    pre = run_step(
        root, "preprocess", "preprocess.py", "--seed", str(SEED), upstream=("ingest", ingest)
    )
    xgb = run_step(
        root,
        "train-xgb",
        "train_xgb.py",
        *("--max-depth", "3", "--seed", str(SEED)),
        upstream=("preprocess", pre),
    )
    forest = run_step(
        root,
        "train-forest",
        "train_forest.py",
        *("--n-estimators", "40", "--seed", str(SEED)),
        upstream=("preprocess", pre),
    )
    return {"ingest": ingest, "preprocess": pre, "train-xgb": xgb, "train-forest": forest}


def test_generate_writes_data_and_logs(pipeline: dict[str, Step]) -> None:
    step = pipeline["ingest"]
    for name in ("interactions.npz", "users.npz", "items.npz"):
        assert (step.output / name).is_file()
    assert step.params() == {
        "n_users": N_USERS,
        "n_items": N_ITEMS,
        "impressions_per_user": IMPRESSIONS,
        "n_categories": 8,
        "seed": SEED,
    }
    metrics = step.metrics()
    assert metrics["rows"] == N_USERS * IMPRESSIONS
    assert 0.03 < metrics["click_rate"] < 0.4
    with np.load(step.output / "interactions.npz", allow_pickle=False) as data:
        assert len(data["user_id"]) == N_USERS * IMPRESSIONS
        assert set(np.unique(data["clicked"])) == {0, 1}
        assert data["item_id"].max() < N_ITEMS


def test_generate_is_deterministic(pipeline: dict[str, Step], tmp_path: Path) -> None:
    first = pipeline["ingest"].output
    again = generate(tmp_path, "again").output
    other = generate(tmp_path, "other-seed", seed=SEED + 1).output
    for name in ("interactions.npz", "users.npz", "items.npz"):
        assert sha256(first / name) == sha256(again / name), name
    assert sha256(first / "interactions.npz") != sha256(other / "interactions.npz")


def test_preprocess_splits_by_user(pipeline: dict[str, Step]) -> None:
    step = pipeline["preprocess"]
    with (
        np.load(step.output / "train.npz", allow_pickle=False) as train,
        np.load(step.output / "holdout.npz", allow_pickle=False) as holdout,
    ):
        names = [str(n) for n in train["feature_names"]]
        assert 6 <= len(names) <= 10
        assert len(set(names)) == len(names)
        assert names == [str(n) for n in holdout["feature_names"]]
        for side in (train, holdout):
            assert side["X"].shape == (len(side["y"]), len(names))
            assert np.isfinite(side["X"]).all()
        assert not set(train["user_id"]) & set(holdout["user_id"])
        metrics = step.metrics()
        assert metrics["train_rows"] == len(train["y"])
        assert metrics["holdout_rows"] == len(holdout["y"])
        assert metrics["train_rows"] + metrics["holdout_rows"] == N_USERS * IMPRESSIONS
        assert len(np.unique(holdout["user_id"])) == round(N_USERS * 0.2)


@pytest.mark.parametrize(
    ("task", "algorithm", "hyperparam", "value"),
    [
        ("train-xgb", "xgboost", "max_depth", 3),
        ("train-forest", "random_forest", "n_estimators", 40),
    ],
)
def test_training_logs_metrics_and_a_loadable_model(
    pipeline: dict[str, Step], task: str, algorithm: str, hyperparam: str, value: int
) -> None:
    step = pipeline[task]
    metrics = step.metrics()
    assert 0.6 <= metrics["auc"] <= 1.0
    assert 0.0 < metrics["ndcg_at_10"] <= 1.0
    assert step.params()["algorithm"] == algorithm
    assert step.params()[hyperparam] == value
    assert step.tags() == {"algorithm": algorithm}
    assert "auc=" in step.proc.stdout
    assert step.proc.stdout.count("\n") == 1

    # per-slice metrics: new users vs regulars, both defined at this size
    for metric in ("auc", "ndcg_at_10"):
        for name in ("new_users", "regulars"):
            assert 0.0 < metrics[f"{metric}/{name}"] <= 1.0

    models = [r for r in step.records if r["kind"] == "model"]
    assert [(m["name"], m["path"]) for m in models] == [("recsys", "models/recsys")]
    folder = step.output / "models" / "recsys"
    assert (folder / META_FILE).is_file()

    # a sample of the training rows beside the model, for the review's drift check
    with (
        np.load(folder / "training_sample.npz", allow_pickle=False) as sample,
        np.load(pipeline["preprocess"].output / "train.npz", allow_pickle=False) as train,
    ):
        assert [str(n) for n in sample["feature_names"]] == [str(n) for n in train["feature_names"]]
        assert sample["X"].shape == (min(5000, len(train["y"])), train["X"].shape[1])
        assert np.isin(sample["X"][:, 0], train["X"][:, 0]).all()

    importance = json.loads((step.output / "feature_importance.json").read_text())
    with np.load(pipeline["preprocess"].output / "holdout.npz", allow_pickle=False) as holdout:
        names = [str(n) for n in holdout["feature_names"]]
        X = holdout["X"]
    assert importance["algorithm"] == algorithm
    assert set(importance["importance"]) == set(names)

    model = load_model(folder, expected_digest=folder_digest(folder))
    assert model.feature_names == names
    with np.load(step.output / "holdout_scores.npz", allow_pickle=False) as recorded:
        expected = recorded["score"][:8]
    rows = [dict(zip(names, map(float, row), strict=True)) for row in X[:8]]
    predicted = model.predict(model.rows_to_matrix(rows))
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("preprocess.py", ("--seed", "7")),
        ("train_xgb.py", ("--max-depth", "3")),
        ("train_forest.py", ("--n-estimators", "40")),
    ],
)
def test_missing_input_fails_with_one_line(
    tmp_path: Path, script: str, args: tuple[str, ...]
) -> None:
    step = run_step(tmp_path, "task", script, *args, check=False)
    assert step.proc.returncode == 1
    lines = step.proc.stderr.strip().splitlines()
    assert len(lines) == 1, step.proc.stderr
    assert "not found" in lines[0]
    assert step.records == []


def _recsys_lib() -> ModuleType:
    name = "_recsys_lib_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / "recsys_lib.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _ndcg_reference(users: np.ndarray, clicks: np.ndarray, scores: np.ndarray, k: int) -> float:
    values = []
    for u in np.unique(users):
        mask = users == u
        gains = clicks[mask].astype(float)
        if gains.sum() == 0:
            continue
        ranked = gains[np.argsort(-scores[mask], kind="stable")][:k]
        ideal = np.sort(gains)[::-1][:k]
        disc = 1.0 / np.log2(np.arange(2, k + 2))
        values.append((ranked * disc[: len(ranked)]).sum() / (ideal * disc[: len(ideal)]).sum())
    return float(np.mean(values)) if values else 0.0


def test_ndcg_at_k() -> None:
    lib = _recsys_lib()
    # One user, click ranked 2nd of 3: 1/log2(3). A user without click is skipped.
    users = np.array([0, 0, 0, 1, 1])
    clicks = np.array([0, 1, 0, 0, 0])
    scores = np.array([0.9, 0.5, 0.1, 0.3, 0.2])
    assert lib.ndcg_at_k(users, clicks, scores) == pytest.approx(1 / np.log2(3))
    assert lib.ndcg_at_k(users, clicks, -scores, k=1) == pytest.approx(0.0)
    assert lib.ndcg_at_k(users, clicks, clicks.astype(float)) == pytest.approx(1.0)
    assert lib.ndcg_at_k(users, np.zeros(5), scores) == 0.0

    rng = np.random.default_rng(0)
    users = rng.integers(0, 40, 600)
    clicks = (rng.random(600) < 0.15).astype(int)
    scores = rng.random(600)
    for k in (3, 10):
        assert lib.ndcg_at_k(users, clicks, scores, k) == pytest.approx(
            _ndcg_reference(users, clicks, scores, k)
        )


def test_user_slices_split_the_holdout() -> None:
    lib = _recsys_lib()
    names = list(lib.FEATURE_NAMES)
    history = np.array([3.0, 14.0, 15.0, 40.0, 8.0, 22.0])
    X = np.zeros((6, len(names)))
    X[:, names.index("user_history_size")] = history
    split = lib.Split(
        X=X,
        y=np.array([1, 0, 1, 0, 0, 1]),
        user_id=np.array([0, 1, 2, 3, 4, 5]),
        feature_names=names,
    )
    masks = lib.user_slices(split)
    assert masks["new_users"].tolist() == [True, True, False, False, True, False]
    assert (masks["new_users"] ^ masks["regulars"]).all()
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.7])
    metrics = lib.slice_metrics(split, scores)
    assert metrics["auc/new_users"] == 1.0
    assert metrics["auc/regulars"] == 1.0
    assert metrics["ndcg_at_10/new_users"] == 1.0
