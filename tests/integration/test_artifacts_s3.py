"""The artifact store on a real S3 API (moto's server on loopback): round trips, dedup,
digest checks on fetch, unsafe manifests, and the errors a misconfigured store gives."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3_server import S3Endpoint, free_port, s3_server, s3_server_process
from signoff.artifacts import open_artifact_store
from signoff.artifacts._tree import manifest_bytes
from signoff.artifacts.remote import FsspecArtifactStore, ObjectStoreError
from signoff.errors import ExecutionError, IntegrityError, NotFoundError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def store(s3: S3Endpoint, prefix: str) -> FsspecArtifactStore:
    return FsspecArtifactStore(f"s3://{s3.bucket}/{prefix}", s3.storage_options())


def _keys(s3: S3Endpoint, prefix: str) -> dict[str, bytes]:
    client: Any = s3.client()
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=f"{prefix}/")
    return {
        obj["Key"]: client.get_object(Bucket=s3.bucket, Key=obj["Key"])["Body"].read()
        for obj in listed.get("Contents", [])
    }


def _tamper(s3: S3Endpoint, prefix: str, digest: str, data: bytes) -> None:
    client: Any = s3.client()
    client.put_object(Bucket=s3.bucket, Key=f"{prefix}/{digest[:2]}/{digest}", Body=data)


def _tree(root: Path) -> Path:
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "top.txt").write_text("top")
    (root / "a" / "same.txt").write_text("same")
    (root / "a" / "b" / "again.txt").write_text("same")
    (root / "a" / "b" / "c" / "data.bin").write_bytes(os.urandom(300_000))
    (root / "a" / "empty").write_bytes(b"")
    (root / "link").symlink_to(root / "top.txt")
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_a_file_round_trips_under_its_digest(
    store: FsspecArtifactStore, s3: S3Endpoint, prefix: str, tmp_path: Path
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights" * 1000)
    digest = store.put(source)
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert _keys(s3, prefix) == {f"{prefix}/{digest[:2]}/{digest}": source.read_bytes()}
    assert store.uri(digest) == f"s3://{s3.bucket}/{prefix}/{digest[:2]}/{digest}"
    fresh = FsspecArtifactStore(f"s3://{s3.bucket}/{prefix}", s3.storage_options())
    assert fresh.exists(digest)
    assert not fresh.exists("0" * 64)
    with fresh.open(digest) as f:
        assert f.read() == source.read_bytes()
    fetched = fresh.fetch(digest, tmp_path / "elsewhere", "copy.bin")
    assert fetched == tmp_path / "elsewhere" / "copy.bin"
    assert fetched.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in fetched.parent.iterdir()) == ["copy.bin"]
    with pytest.raises(NotFoundError, match="no artifact 000000000000"):
        fresh.open("0" * 64)
    with pytest.raises(NotFoundError, match="no artifact 000000000000"):
        fresh.fetch("0" * 64, tmp_path / "none")


def test_a_nested_folder_round_trips_and_same_content_is_stored_once(
    store: FsspecArtifactStore, s3: S3Endpoint, prefix: str, tmp_path: Path
) -> None:
    folder = _tree(tmp_path / "out")
    digest = store.put_tree(folder)
    stored = _keys(s3, prefix)
    # four distinct contents (top, same, data, empty) and the manifest; no link, no partial
    assert len(stored) == 5
    assert all(key.split("/")[1] == key.split("/")[2][:2] for key in stored)
    assert all(
        hashlib.sha256(body).hexdigest() == key.rsplit("/", 1)[1] for key, body in stored.items()
    )
    assert store.put_tree(folder) == digest
    other = FsspecArtifactStore(f"s3://{s3.bucket}/{prefix}", s3.storage_options())
    assert other.put_tree(folder) == digest  # another process: asks, finds, sends nothing
    assert _keys(s3, prefix) == stored

    back = other.fetch_tree(digest, tmp_path / "back")
    assert _files(back) == _files(folder)
    assert not [p for p in back.rglob("*") if ".partial" in p.name or ".copy" in p.name]
    assert store.put_folder(folder) == {
        rel: hashlib.sha256(body).hexdigest() for rel, body in _files(folder).items()
    }


@pytest.mark.parametrize("size", [7, 3 << 20], ids=["small", "large"])
def test_an_object_the_store_holds_is_never_replaced(
    s3: S3Endpoint, prefix: str, tmp_path: Path, size: int
) -> None:
    """A large file is looked up and not sent; a small one goes as a create-only PUT."""
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(size))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    _tamper(s3, prefix, digest, b"placed there first")
    store = FsspecArtifactStore(f"s3://{s3.bucket}/{prefix}", s3.storage_options())
    assert store.put_folder(tmp_path) == {"f.bin": digest}
    assert _keys(s3, prefix) == {f"{prefix}/{digest[:2]}/{digest}": b"placed there first"}


def test_a_tampered_object_is_refused_on_fetch(
    store: FsspecArtifactStore, s3: S3Endpoint, prefix: str, tmp_path: Path
) -> None:
    folder = _tree(tmp_path / "out")
    tree = store.put_tree(folder)
    file_digest = hashlib.sha256(b"top").hexdigest()
    _tamper(s3, prefix, file_digest, b"not what was stored")
    with pytest.raises(IntegrityError, match=f"artifact {file_digest} changed in the store"):
        store.fetch(file_digest, tmp_path / "one")
    assert list((tmp_path / "one").iterdir()) == []  # no partial file left behind
    with pytest.raises(IntegrityError, match=file_digest):
        store.fetch_tree(tree, tmp_path / "back")
    assert not (tmp_path / "back" / "top.txt").exists()
    _tamper(s3, prefix, tree, manifest_bytes({"top.txt": file_digest, "x": "1" * 64}))
    with pytest.raises(IntegrityError, match=f"artifact {tree} changed"):
        store.fetch_tree(tree, tmp_path / "again")


def test_a_manifest_that_leaves_its_folder_is_refused(
    store: FsspecArtifactStore, tmp_path: Path
) -> None:
    payload = store.put_bytes(b"overwrite me")
    for bad in ("../escaped.txt", "a/../../escaped.txt", "/etc/escaped.txt"):
        manifest = store.put_bytes(manifest_bytes({"ok.txt": payload, bad: payload}))
        with pytest.raises(ExecutionError, match="leaves its folder"):
            store.fetch_tree(manifest, tmp_path / "inside" / "deeper")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "inside" / "escaped.txt").exists()
    assert not (tmp_path / "inside" / "deeper" / "ok.txt").exists()


def test_open_artifact_store_picks_the_remote_store(s3: S3Endpoint, prefix: str) -> None:
    found = open_artifact_store(f"s3://{s3.bucket}/{prefix}/")
    assert isinstance(found, FsspecArtifactStore)
    assert found.url == f"s3://{s3.bucket}/{prefix}"


def test_a_missing_bucket_is_a_clear_error_at_first_use(s3: S3Endpoint, tmp_path: Path) -> None:
    store = FsspecArtifactStore("s3://no-such-bucket-here/x", s3.storage_options())
    (tmp_path / "f").write_text("f")
    with pytest.raises(ObjectStoreError, match="bucket 'no-such-bucket-here' does not exist"):
        store.put(tmp_path / "f")


def test_refused_credentials_are_a_clear_error(tmp_path: Path) -> None:
    """A server that checks credentials (moto with auth on) refuses unknown keys."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, server)
        store = FsspecArtifactStore(
            "s3://some-bucket/x",
            {
                "key": "unknown",
                "secret": "unknown",
                "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
            },
        )
        with pytest.raises(ObjectStoreError, match=r"access refused .*\(check the credentials\)"):
            store.put_bytes(b"x")
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"moto_server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"moto_server did not listen on {port} within {timeout}s")


def test_without_s3fs_the_error_says_what_to_install(s3: S3Endpoint, tmp_path: Path) -> None:
    """s3fs blocked in a child interpreter: one line naming the extra, no traceback."""
    (tmp_path / "f").write_text("f")
    script = (
        "import sys; sys.modules['s3fs'] = None\n"
        "from pathlib import Path\n"
        "from signoff.artifacts import open_artifact_store\n"
        "from signoff.errors import SignoffError\n"
        f"store = open_artifact_store('s3://{s3.bucket}/x')\n"
        "try:\n"
        f"    store.put(Path({str(tmp_path / 'f')!r}))\n"
        "except SignoffError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **s3.env},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    assert "pip install 'signoff[s3]'" in lines[0]
    assert "Traceback" not in proc.stderr


def test_the_server_runs_as_a_process_of_its_own(tmp_path: Path) -> None:
    """What a network namespace or another node starts: the same server, as a process."""
    with s3_server_process() as endpoint:
        store = FsspecArtifactStore(f"s3://{endpoint.bucket}/p", endpoint.storage_options())
        digest = store.put_bytes(b"over there")
        assert _keys(endpoint, "p") == {f"p/{digest[:2]}/{digest}": b"over there"}
