"""Train: an XGBoost click model on the preprocessed impressions, scored on the holdout users.

Logs ``auc`` and ``ndcg_at_10`` on the holdout, the hyperparameters, the tag ``algorithm``
and the model ``recsys`` (XGBoost flavor, named features); writes ``feature_importance.json``
(gain) and ``holdout_scores.npz``.
"""

from __future__ import annotations

import argparse
import time

from recsys_lib import finish_training, load_split, positive_int

N_ESTIMATORS = 60
LEARNING_RATE = 0.2


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-depth", type=positive_int, default=6, help="depth of each tree")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the booster")
    return parser.parse_args()


def main() -> None:
    """Fit, evaluate and log one grid point."""
    args = _parse_args()
    train = load_split("train")
    holdout = load_split("holdout")

    import xgboost

    model = xgboost.XGBClassifier(
        max_depth=args.max_depth,
        n_estimators=N_ESTIMATORS,
        learning_rate=LEARNING_RATE,
        tree_method="hist",
        n_jobs=1,
        random_state=args.seed,
    )
    start = time.perf_counter()
    model.fit(train.X, train.y)
    fit_seconds = time.perf_counter() - start
    # Name the booster's features so the saved model carries them.
    model.get_booster().feature_names = list(train.feature_names)

    finish_training(
        model,
        script="train_xgb.py",
        algorithm="xgboost",
        hyperparams={
            "max_depth": args.max_depth,
            "n_estimators": N_ESTIMATORS,
            "learning_rate": LEARNING_RATE,
            "tree_method": "hist",
            "seed": args.seed,
        },
        importances=model.feature_importances_,
        train=train,
        holdout=holdout,
        fit_seconds=fit_seconds,
    )


if __name__ == "__main__":
    main()
