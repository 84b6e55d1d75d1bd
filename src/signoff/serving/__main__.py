"""Command line of one endpoint process: load, check, warm up, then serve until SIGTERM.

Exit codes: 0 after a graceful stop, 2 for bad arguments, 3 when the model folder's digest is
not the expected one, 4 when the model cannot be loaded or fails its warm-up prediction.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from signoff.errors import IntegrityError
from signoff.registry.flavors import load_model
from signoff.serving.app import create_app

__all__ = ["EXIT_BAD_DIGEST", "EXIT_LOAD_FAILED", "main", "parse_args"]

EXIT_BAD_DIGEST = 3
EXIT_LOAD_FAILED = 4
# Longer than any single prediction, shorter than the 10 s a manager waits before SIGKILL.
_GRACEFUL_SHUTDOWN_SECONDS = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the endpoint's arguments (argparse exits 2 on a mistake)."""
    parser = argparse.ArgumentParser(prog="python -m signoff.serving", description=__doc__)
    parser.add_argument("--name", required=True, help="endpoint name")
    parser.add_argument("--model-dir", required=True, type=Path, help="model folder")
    parser.add_argument("--digest", required=True, help="expected sha256 of the model folder")
    parser.add_argument("--model-version", required=True, help="label reported to clients")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default="127.0.0.1")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one endpoint; returns the process exit code."""
    args = parse_args(argv)
    prefix = f"signoff.serving[{args.name}]"
    try:
        model = load_model(args.model_dir, expected_digest=args.digest)
    except IntegrityError as exc:
        print(f"{prefix}: refusing to serve: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_DIGEST
    except Exception as exc:  # any failure of a model file is reported on one line
        print(f"{prefix}: cannot load model: {exc}", file=sys.stderr, flush=True)
        return EXIT_LOAD_FAILED
    try:
        app = create_app(args.name, model, args.model_version, args.digest)
    except Exception as exc:
        print(f"{prefix}: warm-up prediction failed: {exc}", file=sys.stderr, flush=True)
        return EXIT_LOAD_FAILED
    print(
        f"{prefix}: serving {args.model_version} on http://{args.host}:{args.port}",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
