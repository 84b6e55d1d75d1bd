"""A tiny model for gate tests: logistic regression on a fixed synthetic set (fast, seeded)."""

import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

import signoff

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
rng = np.random.default_rng(seed)
X = rng.normal(size=(80, 3))
y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=80) > 0).astype(int)
model = LogisticRegression().fit(X, y)
signoff.log_metric("auc", 0.8 + seed / 100)
columns = {"a": X[:5, 0], "b": X[:5, 1], "c": X[:5, 2]}
signoff.log_model(
    model, "tiny", input_example=columns, training_data={"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]}
)
