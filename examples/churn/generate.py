"""The world of the churn example: one week of customers, drifting week by week.

``python generate.py --week 3 --out data/`` writes ``data/week-03.csv``: one row per
customer active that week, with whether they churned. ``--week`` seeds the week, so a week's
file is the same every time. From week to week the customers change (newer, paying more,
calling support more often) and so does what makes them leave: a model trained on week 1
loses its edge by week 3 or 4.

Other code imports :func:`week_rows` (the tests post a week's customers to the endpoint and
its labels to ``/feedback``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

FEATURES = ("tenure", "monthly_charges", "support_calls", "senior")


def week_rows(week: int, rows: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features (``rows`` x 4, in :data:`FEATURES` order) and churn labels of one week."""
    if week < 1:
        raise SystemExit("error: --week starts at 1")
    rng = np.random.default_rng([week, seed])
    later = week - 1
    tenure = np.clip(rng.normal(30 - 2.5 * later, 12, rows), 0, None).round()
    charges = rng.normal(65 + 6.0 * later, 15, rows).round(2)
    calls = rng.poisson(1.0 + 0.4 * later, rows).astype(float)
    senior = (rng.random(rows) < 0.2).astype(float)
    # what drives churn moves too: support calls stop being a warning sign
    calls_weight = 0.5 - 0.3 * later
    logit = (
        -1.0
        - 0.07 * (tenure - 30)
        + 0.04 * (charges - 65)
        + calls_weight * (calls - 1)
        + 0.4 * senior
    )
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return np.column_stack([tenure, charges, calls, senior]), churned


def write_week(week: int, out: Path, rows: int = 2000) -> Path:
    """Write ``week-NN.csv`` into ``out``."""
    x, y = week_rows(week, rows)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"week-{week:02}.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*FEATURES, "churned"])
        for features, label in zip(x.tolist(), y.tolist(), strict=True):
            writer.writerow([*features, label])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--week", type=int, required=True, help="which week (1, 2, ...)")
    parser.add_argument("--rows", type=int, default=2000, help="customers that week")
    parser.add_argument("--out", type=Path, default=Path("data"), help="folder of week files")
    args = parser.parse_args()
    print(f"wrote {write_week(args.week, args.out, args.rows)}")


if __name__ == "__main__":
    main()
