"""LocalArtifactStore: the artifact store as a local folder, ``<root>/<aa>/<sha256>``.

A file is hashed and hard-linked into the folder: the same bytes are kept once however many
runs produce them, and nothing is copied. On another file system the link fails; the digest
still names the content (the record holds it), and the task run's own folder keeps the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import BinaryIO

from signoff.artifacts._tree import (
    iter_files,
    manifest_bytes,
    place_checked,
    read_manifest,
    safe_relative,
)
from signoff.errors import NotFoundError
from signoff.tracking.fingerprints import file_sha256

__all__ = ["LocalArtifactStore"]


class LocalArtifactStore:
    """Artifacts under one local folder (the home's ``artifacts/``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put(self, path: Path) -> str:
        digest = file_sha256(path)
        target = self._path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):  # another file system: the record names it
                os.link(path, target)
        return digest

    def put_folder(self, folder: Path) -> dict[str, str]:
        return {rel: self.put(path) for rel, path in iter_files(folder)}

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self._path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{digest}.{os.getpid()}.partial")
            partial.write_bytes(data)
            os.replace(partial, target)
        return digest

    def put_tree(self, folder: Path) -> str:
        files = self.put_folder(folder)
        for rel, digest in files.items():  # a link that failed (another file system): copy
            if not self.exists(digest):
                self.put_bytes((folder / rel).read_bytes())
        return self.put_bytes(manifest_bytes(files))

    def fetch_tree(self, digest: str, folder: Path) -> Path:
        with self.open(digest) as manifest:
            files = read_manifest(manifest.read())
        for rel, file_digest in files.items():
            target = folder / safe_relative(rel)
            if not (target.is_file() and file_sha256(target) == file_digest):
                place_checked(self.fetch, file_digest, target)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def uri(self, digest: str) -> str:
        return self._path(digest).as_uri()

    def exists(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def open(self, digest: str) -> BinaryIO:
        if not self.exists(digest):
            raise NotFoundError(f"no artifact {digest[:12]}… in {self.root}")
        return self._path(digest).open("rb")

    def fetch(self, digest: str, folder: Path, name: str | None = None) -> Path:
        target = folder / (name or digest)
        folder.mkdir(parents=True, exist_ok=True)
        with self.open(digest) as source, target.open("wb") as out:
            shutil.copyfileobj(source, out)
        return target
