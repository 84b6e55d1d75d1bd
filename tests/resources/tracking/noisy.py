"""Logs a metric that depends on a seed param, or on nothing stable when there is no seed."""

import random
import sys

import signoff

seed = sys.argv[1]
rng = random.Random(int(seed)) if seed != "none" else random.Random()
signoff.log_metric("score", rng.random())
