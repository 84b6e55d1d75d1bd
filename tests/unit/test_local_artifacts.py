"""The local artifact store: content-addressed puts, and reads by digest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from signoff.artifacts import LocalArtifactStore
from signoff.errors import NotFoundError


def test_a_file_is_stored_once_under_its_digest(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    digest = store.put(a)
    assert digest == hashlib.sha256(b"same bytes").hexdigest()
    assert store.put(b) == digest
    assert store.exists(digest)
    assert store.uri(digest).endswith(f"/{digest[:2]}/{digest}")
    with store.open(digest) as f:
        assert f.read() == b"same bytes"
    fetched = store.fetch(digest, tmp_path / "elsewhere", "copy.txt")
    assert fetched.read_bytes() == b"same bytes"


def test_a_folder_is_stored_file_by_file_without_its_links(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    out = tmp_path / "output"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "m.bin").write_bytes(b"\x00\x01")
    (out / "n.txt").write_text("n")
    (out / "link").symlink_to(out / "n.txt")
    found = store.put_folder(out)
    assert sorted(found) == ["n.txt", "sub/m.bin"]
    assert all(store.exists(d) for d in found.values())
    assert store.put_folder(tmp_path / "missing") == {}


def test_unknown_content_is_not_found(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    assert not store.exists("0" * 64)
    with pytest.raises(NotFoundError):
        store.open("0" * 64)
