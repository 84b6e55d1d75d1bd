"""Train: a scikit-learn churn classifier on the ingested weeks, scored on a holdout.

Logs ``auc`` and ``accuracy`` on a 25 % holdout, the hyperparameter ``c``, and the model
``churn`` with a sample of its training rows (so signoff can measure drift of what the
endpoint sees against what the model learnt from).
"""

from __future__ import annotations

import argparse

import numpy as np

import signoff

FEATURES = ("tenure", "monthly_charges", "support_calls", "senior")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation")
    args = parser.parse_args()
    table = np.loadtxt(
        signoff.input_dir("ingest") / "customers.csv", delimiter=",", skiprows=1, ndmin=2
    )
    x, y = table[:, :4], table[:, 4].astype(int)
    order = np.random.default_rng(7).permutation(len(y))
    cut = int(len(y) * 0.75)
    train, holdout = order[:cut], order[cut:]

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.c, max_iter=500))
    model.fit(x[train], y[train])
    scores = model.predict_proba(x[holdout])[:, 1]
    signoff.log_param("c", args.c)
    signoff.log_metric("auc", float(roc_auc_score(y[holdout], scores)))
    signoff.log_metric("accuracy", float(accuracy_score(y[holdout], scores >= 0.5)))
    signoff.log_tag("algorithm", "logistic_regression")
    columns = {name: x[train][:, i] for i, name in enumerate(FEATURES)}
    signoff.log_model(
        model,
        "churn",
        input_example={name: values[:5] for name, values in columns.items()},
        training_data=columns,
    )


if __name__ == "__main__":
    main()
