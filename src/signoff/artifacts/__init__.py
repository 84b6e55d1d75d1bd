"""Artifact stores: content-addressed files a task run produced (local folder today)."""

from signoff.artifacts.local import LocalArtifactStore

__all__ = ["LocalArtifactStore"]
