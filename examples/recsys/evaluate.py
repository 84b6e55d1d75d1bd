"""Evaluate a registered model on the holdout users of this run (the champion check).

The select task runs this for the challenger and for the model now in production alike, on
the same held-out data, so the comparison is fair: ``python evaluate.py --model DIR --digest
SHA``. The model is loaded only after its digest is checked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from recsys_lib import load_split, ndcg_at_k, roc_auc, slice_metrics

import signoff
from signoff.registry.flavors import load_model


def main() -> None:
    """Score the holdout with the given model and log the same metrics as training does."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the model's folder")
    parser.add_argument("--digest", default=None, help="the model's registered sha256")
    args = parser.parse_args()
    model = load_model(args.model, expected_digest=args.digest)
    holdout = load_split("holdout")
    rows = [dict(zip(holdout.feature_names, map(float, row), strict=True)) for row in holdout.X]
    if [f.name for f in model.meta.signature] != holdout.feature_names:
        raise SystemExit("error: the model's features differ from this run's holdout features")
    scores = np.asarray(model.predict(model.rows_to_matrix(rows)), dtype=np.float64)
    signoff.log_metric("auc", roc_auc(holdout.y, scores))
    signoff.log_metric("ndcg_at_10", ndcg_at_k(holdout.user_id, holdout.y, scores))
    for name, value in slice_metrics(holdout, scores).items():
        signoff.log_metric(name, value)
    print(f"evaluated {args.model.name}: auc and ndcg_at_10 on {len(holdout.y)} holdout rows")


if __name__ == "__main__":
    main()
