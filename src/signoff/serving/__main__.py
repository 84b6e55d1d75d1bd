"""Command line of one endpoint process: load, check, warm up, then serve until SIGTERM.

Exit codes: 0 after a graceful stop, 2 for bad arguments or settings, 3 when the model
folder's digest is not the expected one, 4 when the model cannot be loaded or fails its
warm-up prediction. The admin token and the prediction log settings come from the
environment (see :class:`signoff.serving.settings.ServingSettings`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

import uvicorn
from pydantic import ValidationError

from signoff.domain.names import check_endpoint_name
from signoff.errors import IntegrityError, SignoffError
from signoff.registry.flavors import load_model
from signoff.serving.app import create_app
from signoff.serving.predictions import ParquetSink, PredictionLog, PredictionSink, StoreSink
from signoff.serving.settings import ServingSettings

__all__ = ["EXIT_BAD_DIGEST", "EXIT_LOAD_FAILED", "main", "parse_args"]

EXIT_BAD_SETTINGS = 2
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


def _prediction_log(name: str, settings: ServingSettings) -> PredictionLog | None:
    if settings.prediction_log_sample <= 0:
        return None
    sink: PredictionSink
    if settings.prediction_log_parquet is not None:
        sink = ParquetSink(settings.prediction_log_parquet / name)
    else:
        from signoff.store.sql import open_store  # only an endpoint that logs needs SQL

        # The deploying process migrated the store; an endpoint never migrates it.
        store = open_store(settings.resolved_database_url, migrate=False)
        sink = StoreSink(store, close=store.close)
    return PredictionLog(name, sink, settings.prediction_log_sample)


def _stop(signum: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the SIGTERM it handled once it has stopped; ending through SystemExit
    # (instead of the default action) lets the prediction log write its last batch.
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Run one endpoint; returns the process exit code."""
    args = parse_args(argv)
    prefix = f"signoff.serving[{args.name!r}]"
    try:
        check_endpoint_name(args.name)  # it names a folder of the prediction log
    except SignoffError as exc:
        print(f"{prefix}: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_SETTINGS
    try:
        settings = ServingSettings()
    except ValidationError as exc:
        reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"{prefix}: invalid settings: {reason}", file=sys.stderr, flush=True)
        return EXIT_BAD_SETTINGS
    try:
        model = load_model(args.model_dir, expected_digest=args.digest)
    except IntegrityError as exc:
        print(f"{prefix}: refusing to serve: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_DIGEST
    except Exception as exc:  # any failure of a model file is reported on one line
        print(f"{prefix}: cannot load model: {exc}", file=sys.stderr, flush=True)
        return EXIT_LOAD_FAILED
    try:
        log = _prediction_log(args.name, settings)
    except SignoffError as exc:
        print(f"{prefix}: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_SETTINGS
    token = settings.endpoint_token.get_secret_value() if settings.endpoint_token else None
    try:
        app = create_app(
            args.name,
            model,
            args.model_version,
            args.digest,
            model_dir=str(args.model_dir.resolve()),
            admin_token=token or None,
            prediction_log=log,
        )
    except Exception as exc:
        print(f"{prefix}: warm-up prediction failed: {exc}", file=sys.stderr, flush=True)
        if log is not None:
            log.close()
        return EXIT_LOAD_FAILED
    print(
        f"{prefix}: serving {args.model_version} on http://{args.host}:{args.port}"
        + (f" (logging {settings.prediction_log_sample:g} of predictions)" if log else ""),
        file=sys.stderr,
        flush=True,
    )
    signal.signal(signal.SIGTERM, _stop)
    try:
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
    finally:
        if log is not None:
            log.close()  # the last sampled predictions are written before the process ends
    return 0


if __name__ == "__main__":
    sys.exit(main())
