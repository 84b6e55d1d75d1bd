"""A real S3 API on loopback for tests and benchmarks: moto's server, in this process.

``with s3_server() as s3:`` starts ``moto.server.ThreadedMotoServer`` on 127.0.0.1 at a free
port, creates a bucket, and yields an :class:`S3Endpoint`: its URL, the bucket, and the
environment a client (boto3, s3fs, a ``signoff`` subprocess) needs to reach it with dummy
credentials. The server is stopped on exit.

Where the server must live in another process (a network namespace, a Ray node), run this
file: ``python tests/s3_server.py --port P --bucket B`` prints its URL on one line once the
bucket exists, and serves until it is terminated (SIGTERM) or its stdin closes.
"""

from __future__ import annotations

import argparse
import select
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["S3Endpoint", "free_port", "s3_server", "s3_server_process"]

ACCESS_KEY = "signoff-test-key"
SECRET_KEY = "signoff-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    """A running S3 server and the bucket made on it."""

    url: str  # http://127.0.0.1:PORT
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """What boto3 / s3fs read from the environment to talk to this server."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> object:
        """A boto3 S3 client on this server (for checks beside the code under test)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def storage_options(self) -> dict[str, object]:
        """s3fs options reaching this server without touching the process environment."""
        return {
            "key": ACCESS_KEY,
            "secret": SECRET_KEY,
            "client_kwargs": {"endpoint_url": self.url, "region_name": REGION},
        }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def s3_server(bucket: str | None = None, port: int | None = None) -> Iterator[S3Endpoint]:
    """Start moto's S3 server on loopback with one bucket; stop it on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port or free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = S3Endpoint(f"http://{host}:{port}", bucket or f"signoff-{uuid.uuid4().hex[:8]}")
        endpoint.client().create_bucket(Bucket=endpoint.bucket)  # type: ignore[attr-defined]
        yield endpoint
    finally:
        server.stop()


@contextmanager
def s3_server_process(
    prefix: Sequence[str] = (), bucket: str | None = None, timeout: float = 30.0
) -> Iterator[S3Endpoint]:
    """This file as a server process (``prefix``: e.g. ``ip netns exec NS``); killed on exit."""
    bucket = bucket or f"signoff-{uuid.uuid4().hex[:8]}"
    command = [*prefix, sys.executable, __file__, "--port", str(free_port()), "--bucket", bucket]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline().strip() if ready and proc.stdout else ""
        if not line.startswith("http://"):
            raise RuntimeError(f"the S3 server did not start within {timeout}s: {line!r}")
        yield S3Endpoint(line, bucket)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="moto's S3 server on 127.0.0.1, one bucket")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bucket", default=None)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with s3_server(args.bucket, args.port or None) as endpoint:
        print(endpoint.url, flush=True)
        sys.stdin.read()  # until the parent closes it (or terminates this process)


if __name__ == "__main__":
    main()
