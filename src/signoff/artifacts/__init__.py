"""Artifact stores: content-addressed files a task run produced, and folders as manifests."""

from pathlib import Path
from urllib.parse import unquote, urlsplit

from signoff.artifacts.local import LocalArtifactStore
from signoff.domain.ports_execution import ArtifactStore

__all__ = ["LocalArtifactStore", "open_artifact_store"]


def open_artifact_store(url: str | Path) -> ArtifactStore:
    """The store at ``url``: a local folder (a path or ``file://``), else an fsspec URL."""
    text = str(url)
    parts = urlsplit(text)
    if parts.scheme == "file":
        return LocalArtifactStore(Path(unquote(parts.path)))
    if len(parts.scheme) <= 1:  # a plain path (a one-letter scheme is a Windows drive)
        return LocalArtifactStore(Path(text).expanduser().resolve())
    from signoff.artifacts.remote import FsspecArtifactStore  # fsspec only when asked for

    return FsspecArtifactStore(text)
