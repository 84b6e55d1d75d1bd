"""PSI and KS on distributions whose drift is known, and the per-feature comparison."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from signoff.stats.drift import (
    EPSILON,
    TrainingSample,
    compare_samples,
    drift_level,
    ks_statistic,
    load_training_sample,
    psi,
)

RNG = np.random.default_rng(0)
NORMAL = RNG.normal(0.0, 1.0, 5000)


def test_identical_samples_do_not_drift() -> None:
    assert psi(NORMAL, NORMAL) == pytest.approx(0.0, abs=1e-12)
    assert ks_statistic(NORMAL, NORMAL) == 0.0


def test_two_draws_of_one_distribution_barely_drift() -> None:
    other = np.random.default_rng(1).normal(0.0, 1.0, 5000)
    assert psi(NORMAL, other) < 0.02
    assert ks_statistic(NORMAL, other) < 0.04


def test_a_shift_drifts_a_lot() -> None:
    shifted = np.random.default_rng(1).normal(1.0, 1.0, 5000)
    assert psi(NORMAL, shifted) > 0.5
    # KS of N(0,1) vs N(1,1) tends to 2*Phi(0.5) - 1 = 0.3829
    assert ks_statistic(NORMAL, shifted) == pytest.approx(0.3829, abs=0.03)


def test_psi_grows_with_the_shift() -> None:
    values = [psi(NORMAL, NORMAL + d) for d in (0.1, 0.3, 0.6)]
    assert values == sorted(values)
    assert drift_level(values[0]) == "none"


def test_psi_of_known_bins() -> None:
    # Reference: 0..9 each once -> deciles cut between every value, 10 bins of 10%.
    reference = np.arange(10.0)
    # Current: everything in the first bin -> 100% vs 10% there, EPSILON vs 10% in 9 others.
    current = np.zeros(10)
    expected = (1.0 - 0.1) * np.log(1.0 / 0.1) + 9 * (EPSILON - 0.1) * np.log(EPSILON / 0.1)
    assert psi(reference, current) == pytest.approx(expected)


def test_psi_of_a_discrete_feature_merges_repeated_cut_points() -> None:
    reference = np.array([0.0] * 80 + [1.0] * 20)
    same = np.array([0.0] * 80 + [1.0] * 20)
    flipped = np.array([0.0] * 20 + [1.0] * 80)
    assert psi(reference, same) == pytest.approx(0.0)
    assert psi(reference, flipped) == pytest.approx(2 * 0.6 * np.log(4.0))


def test_ks_of_disjoint_samples_is_one() -> None:
    assert ks_statistic([1, 2, 3], [10, 11]) == 1.0
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)


def test_empty_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        psi([], [1.0])
    with pytest.raises(ValueError, match="at least one value"):
        ks_statistic([np.nan], [1.0])


@pytest.mark.parametrize(
    ("value", "level"),
    [(0.0, "none"), (0.099, "none"), (0.1, "moderate"), (0.2, "moderate"), (0.21, "significant")],
)
def test_levels(value: float, level: str) -> None:
    assert drift_level(value) == level


def test_compare_samples_flags_the_shifted_feature() -> None:
    rng = np.random.default_rng(3)
    champion = TrainingSample(
        np.column_stack([rng.normal(0, 1, 2000), rng.uniform(0, 1, 2000)]), ("a", "b")
    )
    challenger = TrainingSample(
        np.column_stack([rng.normal(0, 1, 1500), rng.uniform(0.5, 1.5, 1500), np.ones(1500)]),
        ("a", "b", "new"),
    )
    result = compare_samples(champion, challenger)
    assert result["flag"] is True
    by_name = {f["name"]: f for f in result["features"]}
    assert set(by_name) == {"a", "b"}
    assert by_name["a"]["level"] == "none"
    assert by_name["b"]["level"] == "significant"
    assert by_name["b"]["ks"] == pytest.approx(0.5, abs=0.05)
    assert result["only_in_challenger"] == ["new"]
    assert result["rows"] == {"champion": 2000, "challenger": 1500}


def _write_sample(folder: Path, X: np.ndarray, names: list[str]) -> None:
    with zipfile.ZipFile(folder / "training_sample.npz", "w") as archive:
        for key, array in (("X", X), ("feature_names", np.asarray(names))):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(f"{key}.npy", buffer.getvalue())


def test_load_training_sample(tmp_path: Path) -> None:
    assert load_training_sample(tmp_path) is None
    _write_sample(tmp_path, np.arange(6.0).reshape(3, 2), ["x", "y"])
    sample = load_training_sample(tmp_path)
    assert sample is not None
    assert sample.feature_names == ("x", "y")
    assert sample.column("y").tolist() == [1.0, 3.0, 5.0]


def test_a_sample_whose_shape_and_names_disagree_is_ignored(tmp_path: Path) -> None:
    _write_sample(tmp_path, np.zeros((3, 2)), ["only-one"])
    assert load_training_sample(tmp_path) is None
    (tmp_path / "training_sample.npz").write_bytes(b"not a zip")
    assert load_training_sample(tmp_path) is None


def test_a_pickled_sample_is_not_loaded(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "training_sample.npz", "w") as archive:
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.array([object()], dtype=object), allow_pickle=True)
        archive.writestr("X.npy", buffer.getvalue())
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.asarray(["x"]), allow_pickle=False)
        archive.writestr("feature_names.npy", buffer.getvalue())
    assert load_training_sample(tmp_path) is None
