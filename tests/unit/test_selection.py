"""Champion selection: objectives, target bars, missing metrics and tie-breaking."""

from __future__ import annotations

import math
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from signoff.domain.selection import Candidate, Ranking, rank_candidates
from signoff.domain.specs import ConditionSpec


def cand(order: int, **metrics: float) -> Candidate:
    return Candidate(f"tr-{order}", f"train[{order}]", order, metrics)


def labels(ranking: Ranking) -> list[str]:
    return [c.label for c, _, _ in ranking.rows]


def notes(ranking: Ranking) -> dict[str, tuple[bool, str]]:
    return {c.label: (eligible, note) for c, eligible, note in ranking.rows}


def test_max_objective_ranks_highest_first() -> None:
    ranking = rank_candidates(
        [ConditionSpec("auc", "max")], [cand(0, auc=0.7), cand(1, auc=0.9), cand(2, auc=0.8)]
    )
    assert labels(ranking) == ["train[1]", "train[2]", "train[0]"]
    assert ranking.winner is not None
    assert ranking.winner.task_run_id == "tr-1"
    assert all(eligible and note == "eligible" for _, eligible, note in ranking.rows)


def test_min_objective_ranks_lowest_first() -> None:
    ranking = rank_candidates(
        [ConditionSpec("rmse", "min")], [cand(0, rmse=2.0), cand(1, rmse=3.0), cand(2, rmse=1.5)]
    )
    assert labels(ranking) == ["train[2]", "train[0]", "train[1]"]
    assert ranking.winner == cand(2, rmse=1.5)


def test_max_target_makes_a_low_score_ineligible_with_the_reason() -> None:
    ranking = rank_candidates(
        [ConditionSpec("auc", "max", target=0.8)],
        [cand(0, auc=0.79), cand(1, auc=0.8), cand(2, auc=0.85)],
    )
    assert labels(ranking) == ["train[2]", "train[1]", "train[0]"]
    by_label = notes(ranking)
    assert by_label["train[1]"] == (True, "eligible")  # meeting the bar exactly is enough
    eligible, note = by_label["train[0]"]
    assert not eligible
    assert note == "auc=0.79 misses target >= 0.8"
    assert ranking.winner is not None
    assert ranking.winner.label == "train[2]"


def test_min_target_makes_a_high_loss_ineligible_with_the_reason() -> None:
    ranking = rank_candidates(
        [ConditionSpec("loss", "min", target=0.5)], [cand(0, loss=0.1), cand(1, loss=0.6)]
    )
    assert notes(ranking)["train[1]"] == (False, "loss=0.6 misses target <= 0.5")
    assert ranking.winner is not None
    assert ranking.winner.label == "train[0]"


def test_ineligible_candidate_ranks_below_eligible_ones_whatever_its_score() -> None:
    # the first condition would rank train[0] best, but it misses the second condition's bar
    ranking = rank_candidates(
        [ConditionSpec("auc", "max"), ConditionSpec("latency", "min", target=10.0)],
        [cand(0, auc=0.99, latency=50.0), cand(1, auc=0.70, latency=5.0)],
    )
    assert labels(ranking) == ["train[1]", "train[0]"]
    assert notes(ranking)["train[0]"] == (False, "latency=50 misses target <= 10")


def test_missing_metric_is_ineligible() -> None:
    ranking = rank_candidates(
        [ConditionSpec("auc", "max")], [cand(0), cand(1, auc=0.5), cand(2, loss=0.1)]
    )
    assert labels(ranking)[0] == "train[1]"
    assert notes(ranking)["train[0]"] == (False, "no auc logged")
    assert notes(ranking)["train[2]"] == (False, "no auc logged")
    assert ranking.winner is not None
    assert ranking.winner.label == "train[1]"


def test_nan_metric_counts_as_missing() -> None:
    ranking = rank_candidates(
        [ConditionSpec("auc", "max")], [cand(0, auc=math.nan), cand(1, auc=0.1)]
    )
    assert labels(ranking) == ["train[1]", "train[0]"]
    assert notes(ranking)["train[0]"] == (False, "no auc logged")


def test_missing_second_metric_is_ineligible() -> None:
    ranking = rank_candidates(
        [ConditionSpec("auc", "max"), ConditionSpec("loss", "min")],
        [cand(0, auc=0.9), cand(1, auc=0.8, loss=0.3)],
    )
    assert notes(ranking)["train[0]"] == (False, "no loss logged")
    assert ranking.winner is not None
    assert ranking.winner.label == "train[1]"


def test_tie_on_the_first_condition_is_broken_by_the_second() -> None:
    conditions = [ConditionSpec("auc", "max"), ConditionSpec("loss", "min")]
    ranking = rank_candidates(
        conditions,
        [cand(0, auc=0.9, loss=0.4), cand(1, auc=0.9, loss=0.2), cand(2, auc=0.8, loss=0.1)],
    )
    assert labels(ranking) == ["train[1]", "train[0]", "train[2]"]


def test_exact_tie_goes_to_the_earliest_candidate() -> None:
    conditions = [ConditionSpec("auc", "max"), ConditionSpec("loss", "min")]
    late_first = [
        cand(5, auc=0.9, loss=0.2),
        cand(2, auc=0.9, loss=0.2),
        cand(4, auc=0.9, loss=0.2),
    ]
    ranking = rank_candidates(conditions, late_first)
    assert [c.order for c, _, _ in ranking.rows] == [2, 4, 5]
    assert ranking.winner is not None
    assert ranking.winner.order == 2


def test_no_eligible_candidate_means_no_winner() -> None:
    ranking = rank_candidates(
        [ConditionSpec("auc", "max", target=0.95)], [cand(0, auc=0.9), cand(1)]
    )
    assert ranking.winner is None
    assert [eligible for _, eligible, _ in ranking.rows] == [False, False]
    assert len(ranking.rows) == 2


def test_no_candidates_means_no_winner() -> None:
    ranking = rank_candidates([ConditionSpec("auc", "max")], [])
    assert ranking.rows == ()
    assert ranking.winner is None


def test_without_conditions_the_earliest_candidate_wins() -> None:
    ranking = rank_candidates([], [cand(3, auc=0.1), cand(1, auc=0.9)])
    assert labels(ranking) == ["train[1]", "train[3]"]
    assert all(eligible for _, eligible, _ in ranking.rows)


_scores = st.one_of(st.floats(-10, 10, allow_nan=False), st.just(math.nan))


@settings(max_examples=150, database=None)
@given(
    st.lists(st.dictionaries(st.sampled_from(["auc", "loss"]), _scores), max_size=6),
    st.sampled_from(["max", "min"]),
    st.one_of(st.none(), st.floats(-5, 5)),
)
def test_winner_is_an_eligible_best_and_the_ranking_a_permutation(
    metric_sets: list[Mapping[str, float]], objective: str, target: float | None
) -> None:
    candidates = [Candidate(f"tr-{i}", f"c{i}", i, m) for i, m in enumerate(metric_sets)]
    ranking = rank_candidates([ConditionSpec("auc", objective, target)], candidates)
    assert sorted(c.order for c, _, _ in ranking.rows) == list(range(len(candidates)))

    def ok(m: Mapping[str, float]) -> bool:
        value = m.get("auc", math.nan)
        if math.isnan(value):
            return False
        if target is None:
            return True
        return value >= target if objective == "max" else value <= target

    eligible = [c for c in candidates if ok(c.metrics)]
    assert [c for c, flag, _ in ranking.rows if flag] == sorted(
        eligible, key=lambda c: (-c.metrics["auc"] if objective == "max" else c.metrics["auc"],
                                 c.order),
    )  # fmt: skip
    # eligible rows come first
    flags = [flag for _, flag, _ in ranking.rows]
    assert flags == sorted(flags, reverse=True)
    assert ranking.winner == (ranking.rows[0][0] if eligible else None)
