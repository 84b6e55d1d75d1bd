"""Ingest: the latest weeks of customer data, as the training set.

Reads the newest ``--weeks`` files ``week-NN.csv`` of ``--data`` (relative to the flow's
folder) and writes them, concatenated, to ``customers.csv`` in the output folder. Logs the
weeks and the row count.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import signoff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="folder of week files")
    parser.add_argument("--weeks", type=int, default=2, help="how many recent weeks")
    args = parser.parse_args()
    files = sorted(args.data.glob("week-*.csv"))[-args.weeks :]
    if not files:
        raise SystemExit(f"error: no week-NN.csv in {args.data} (python generate.py --week 1)")
    out = signoff.output_dir() / "customers.csv"
    rows = 0
    with out.open("w") as sink:
        for i, path in enumerate(files):
            lines = path.read_text().splitlines()
            sink.write("\n".join(lines if i == 0 else lines[1:]) + "\n")
            rows += len(lines) - 1
    signoff.log_param("weeks", ",".join(p.stem for p in files))
    signoff.log_metric("rows", rows)
    print(f"ingested {rows} rows from {', '.join(p.name for p in files)}")


if __name__ == "__main__":
    main()
