"""Preprocess: turn the ingested tables into a feature matrix and split it by user.

One row per impression with the numeric features of ``recsys_lib.FEATURE_NAMES``; a seeded
fraction of the users (all their impressions) is held out for evaluation, so no user is on
both sides. Writes ``train.npz`` and ``holdout.npz`` (X, y, user_id, feature_names).
"""

from __future__ import annotations

import argparse

import numpy as np
from recsys_lib import FEATURE_NAMES, build_features, holdout_users, load_npz, save_npz

import signoff


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be strictly between 0 and 1")
    return value


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7, help="seed of the user split")
    parser.add_argument(
        "--holdout-fraction", type=_fraction, default=0.2, help="share of users held out"
    )
    return parser.parse_args()


def main() -> None:
    """Build features, split, write both sides and log their sizes."""
    args = _parse_args()
    src = signoff.input_dir("ingest")
    producer = "the ingest task (generate.py)"
    interactions = load_npz(
        src / "interactions.npz", ("user_id", "item_id", "clicked"), producer=producer
    )
    users = load_npz(
        src / "users.npz",
        ("age_bucket", "activity", "preferred_category", "history"),
        producer=producer,
    )
    items = load_npz(
        src / "items.npz",
        ("category", "popularity", "price_tier", "freshness"),
        producer=producer,
    )

    X = build_features(interactions, users, items)
    y = interactions["clicked"].astype(np.int64)
    user_id = interactions["user_id"].astype(np.int64)
    held_out = np.isin(user_id, holdout_users(user_id, args.holdout_fraction, args.seed))
    if held_out.all():
        raise SystemExit("error: need at least 2 users to split into train and holdout")
    names = np.array(FEATURE_NAMES)

    out = signoff.output_dir()
    for name, mask in (("train", ~held_out), ("holdout", held_out)):
        save_npz(
            out / f"{name}.npz",
            {"X": X[mask], "y": y[mask], "user_id": user_id[mask], "feature_names": names},
        )

    signoff.log_param("seed", args.seed)
    signoff.log_param("holdout_fraction", args.holdout_fraction)
    signoff.log_param("features", ",".join(FEATURE_NAMES))
    signoff.log_metric("n_features", len(FEATURE_NAMES))
    signoff.log_metric("train_rows", int((~held_out).sum()))
    signoff.log_metric("holdout_rows", int(held_out.sum()))
    signoff.log_metric("train_users", len(np.unique(user_id[~held_out])))
    signoff.log_metric("holdout_users", len(np.unique(user_id[held_out])))
    signoff.log_metric("train_click_rate", float(y[~held_out].mean()))
    signoff.log_metric("holdout_click_rate", float(y[held_out].mean()))
    print(
        f"preprocess.py: {len(FEATURE_NAMES)} features, {int((~held_out).sum())} train rows, "
        f"{int(held_out.sum())} holdout rows -> {out}"
    )


if __name__ == "__main__":
    main()
