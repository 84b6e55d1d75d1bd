"""A real S3 API on loopback for tests and benchmarks: moto's server, in this process.

``with s3_server() as s3:`` starts ``moto.server.ThreadedMotoServer`` on 127.0.0.1 at a free
port, creates a bucket, and yields an :class:`S3Endpoint`: its URL, the bucket, and the
environment a client (boto3, s3fs, a ``signoff`` subprocess) needs to reach it with dummy
credentials. The server is stopped on exit.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["S3Endpoint", "free_port", "s3_server"]

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
def s3_server(bucket: str | None = None) -> Iterator[S3Endpoint]:
    """Start moto's S3 server on loopback with one bucket; stop it on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = S3Endpoint(f"http://{host}:{port}", bucket or f"signoff-{uuid.uuid4().hex[:8]}")
        endpoint.client().create_bucket(Bucket=endpoint.bucket)  # type: ignore[attr-defined]
        yield endpoint
    finally:
        server.stop()
