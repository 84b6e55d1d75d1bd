"""A tiny training stand-in: logs a score derived from its params."""

import argparse
import sys

import signoff

parser = argparse.ArgumentParser()
parser.add_argument("--quality", type=float, required=True)
parser.add_argument("--fail", default="no")
args = parser.parse_args()
if args.fail == "yes":
    print("boom: asked to fail", file=sys.stderr)
    sys.exit(3)
signoff.log_param("quality", args.quality)
signoff.log_metric("score", args.quality / 10)
print(f"cnvrg_tag_seen_by_stdout: {args.quality}")
