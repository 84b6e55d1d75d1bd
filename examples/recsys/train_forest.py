"""Train: a scikit-learn random-forest click model, scored on the holdout users.

Logs ``auc`` and ``ndcg_at_10`` on the holdout, the hyperparameters, the tag ``algorithm``
and the model ``recsys`` (scikit-learn flavor, saved with skops, named features); writes
``feature_importance.json`` (mean impurity decrease) and ``holdout_scores.npz``.
"""

from __future__ import annotations

import argparse
import time

from recsys_lib import finish_training, load_split, positive_int

MAX_DEPTH = 8


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-estimators", type=positive_int, default=120, help="number of trees")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the forest")
    return parser.parse_args()


def main() -> None:
    """Fit, evaluate and log one grid point."""
    args = _parse_args()
    train = load_split("train")
    holdout = load_split("holdout")

    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(
        n_estimators=args.n_estimators,
        max_depth=MAX_DEPTH,
        n_jobs=1,
        random_state=args.seed,
    )
    start = time.perf_counter()
    model.fit(train.X, train.y)
    fit_seconds = time.perf_counter() - start

    finish_training(
        model,
        script="train_forest.py",
        algorithm="random_forest",
        hyperparams={
            "n_estimators": args.n_estimators,
            "max_depth": MAX_DEPTH,
            "seed": args.seed,
        },
        importances=model.feature_importances_,
        train=train,
        holdout=holdout,
        fit_seconds=fit_seconds,
    )


if __name__ == "__main__":
    main()
