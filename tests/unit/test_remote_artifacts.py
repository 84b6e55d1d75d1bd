"""The fsspec artifact store on fsspec's in-memory file system: the path other object stores
take (a temporary key moved in place, transfers on a small thread pool)."""

from __future__ import annotations

import hashlib
import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest

from signoff.artifacts import open_artifact_store
from signoff.artifacts._tree import manifest_bytes
from signoff.artifacts.remote import FsspecArtifactStore
from signoff.errors import ExecutionError, IntegrityError, NotFoundError


@pytest.fixture
def store() -> FsspecArtifactStore:
    found = open_artifact_store(f"memory://signoff-{uuid.uuid4().hex[:8]}/artifacts")
    assert isinstance(found, FsspecArtifactStore)
    return found


def _objects(store: FsspecArtifactStore) -> dict[str, bytes]:
    fs: Any = store.fs
    root = store.url.removeprefix("memory:/")
    return {path: fs.cat_file(path) for path in fs.find(root)}


def _folder(root: Path, files: int = 30) -> Path:
    for i in range(files):
        path = root / f"d{i % 4}" / f"e{i % 3}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content {i % 20}")  # ten files share their content with another
    return root


def test_a_folder_round_trips_with_no_temporary_key_left(
    store: FsspecArtifactStore, tmp_path: Path
) -> None:
    folder = _folder(tmp_path / "out")
    digest = store.put_tree(folder)
    stored = _objects(store)
    assert len(stored) == 21  # twenty contents and the manifest
    assert not [key for key in stored if ".partial" in key]
    for key, body in stored.items():
        assert key.endswith(f"/{hashlib.sha256(body).hexdigest()}")
    back = store.fetch_tree(digest, tmp_path / "back")
    assert {p.relative_to(back) for p in back.rglob("*.txt")} == {
        p.relative_to(folder) for p in folder.rglob("*.txt")
    }
    for path in folder.rglob("*.txt"):
        assert (back / path.relative_to(folder)).read_bytes() == path.read_bytes()
    assert not [p for p in back.rglob("*") if p.name.startswith(".")]


def test_bytes_files_and_lookups(store: FsspecArtifactStore, tmp_path: Path) -> None:
    digest = store.put_bytes(b"report")
    assert digest == hashlib.sha256(b"report").hexdigest()
    assert store.exists(digest)
    assert store.uri(digest).startswith("memory://")
    with store.open(digest) as f:
        assert f.read() == b"report"
    assert store.fetch(digest, tmp_path, "r.json").read_bytes() == b"report"
    with pytest.raises(NotFoundError, match="no artifact"):
        store.open("a" * 64)
    with pytest.raises(NotFoundError, match="not an artifact digest"):
        store.exists("../../etc/passwd")


def test_a_changed_object_is_refused_and_nothing_is_placed(
    store: FsspecArtifactStore, tmp_path: Path
) -> None:
    folder = _folder(tmp_path / "out", files=3)
    tree = store.put_tree(folder)
    victim = hashlib.sha256(b"content 1").hexdigest()
    fs: Any = store.fs
    fs.pipe_file(store.url.removeprefix("memory:/") + f"/{victim[:2]}/{victim}", b"evil")
    with pytest.raises(IntegrityError, match=victim):
        store.fetch_tree(tree, tmp_path / "back")
    assert not [p for p in (tmp_path / "back").rglob("*") if p.is_file()]


def test_a_manifest_path_outside_the_folder_is_refused(
    store: FsspecArtifactStore, tmp_path: Path
) -> None:
    payload = store.put_bytes(b"x")
    manifest = store.put_bytes(manifest_bytes({"../outside": payload}))
    with pytest.raises(ExecutionError, match="leaves its folder"):
        store.fetch_tree(manifest, tmp_path / "in")
    assert not (tmp_path / "outside").exists()


def test_a_store_pickles_as_its_url_and_finds_the_same_content(
    store: FsspecArtifactStore,
) -> None:
    """Sent to another process (a Ray task), the store reopens its file system there."""
    digest = store.put_bytes(b"travels")
    copy = pickle.loads(pickle.dumps(store))
    assert copy.url == store.url
    with copy.open(digest) as f:
        assert f.read() == b"travels"
