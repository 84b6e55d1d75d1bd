"""Execution ports: time, running task runs, and the artifact store they hand outputs over by.

A :class:`TaskExecution` carries what a worker needs without the driver's disk: the command
or callable, its environment, the code snapshot and the upstream outputs as
:class:`ArtifactRef`s, and where the outputs go. The executor builds the working folder from
it (``signoff.executors.materialise``); the engine does no folder I/O for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from signoff.domain.specs import Resources

__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "Clock",
    "Executor",
    "TaskExecution",
    "TaskOutcome",
]


class Clock(Protocol):
    """Where time comes from (a fake one in tests)."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a fake clock may move its time on instead)."""
        ...


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A folder a task run receives: an upstream task run's output, or the run's code.

    ``uri`` locates it (a local folder today; an artifact store's address for a remote
    worker). ``slug`` is the folder name under ``inputs/``; ``index`` is the grid index when
    the upstream task fanned out (``inputs/<slug>/<index>/``), -1 otherwise.
    """

    task: str
    slug: str
    uri: str
    index: int = -1


@dataclass(frozen=True, slots=True)
class TaskExecution:
    """Everything an executor needs to run one task run's command or callable."""

    task_run_id: str
    command: str
    work_dir: Path
    env: Mapping[str, str]
    cpu: float = 1.0
    gpu: float = 0.0
    memory_mb: int | None = None
    timeout: float | None = None
    call: str | None = None  # "module:function": a Python task run in-process
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Path] = field(default_factory=dict)  # upstream name -> its output folder
    code: str | None = None  # the run's code snapshot (linked into a command's folder)
    input_refs: tuple[ArtifactRef, ...] = ()  # the upstream outputs, placed under inputs/
    output_dir: str = "output"  # where outputs go, relative to the working folder
    output_link: str | None = None  # cnvrg's output_dir: another name for the output folder
    fresh: bool = True  # a first attempt (a retry starts from an empty output folder)
    custom: tuple[tuple[str, float], ...] = ()  # custom cluster resources (name, amount)
    executor: str | None = None  # "local" or "ray"; None: the process's default


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """How a task run's command ended."""

    task_run_id: str
    exit_code: int
    error: str | None = None  # set when the command could not even start
    executor: str | None = None  # which executor ran it ("local", "ray")
    node: str | None = None  # the machine it ran on (host name, or the Ray node's address)


class Executor(Protocol):
    """Runs task commands; ``submit`` returns at once, ``wait_any`` blocks for finished ones.

    The engine asks ``refusal`` and ``fits`` before it submits: a refused task run fails
    without starting, one that does not fit yet waits for running ones to end.
    """

    def refusal(self, resources: Resources) -> str | None:
        """Why a task run asking ``resources`` can never run here (more than the machine
        has, e.g. ``asks for 2 GPUs; this machine has 0 (…)``); None when it can."""
        ...

    def fits(self, resources: Resources) -> bool:
        """Whether a task run asking ``resources`` could start now (False when refused)."""
        ...

    def in_flight(self) -> int:
        """How many submitted task runs have not been returned by ``wait_any`` yet."""
        ...

    def submit(self, execution: TaskExecution) -> None:
        """Start a task run; one it cannot start becomes a failed outcome, not an exception."""
        ...

    def wait_any(self, timeout: float | None = None) -> list[TaskOutcome]: ...

    def cancel(self, task_run_id: str) -> None: ...

    def shutdown(self) -> None: ...


class ArtifactStore(Protocol):
    """Content-addressed files: stored once under their sha256, found again by digest."""

    def put(self, path: Path) -> str:
        """Store a file's bytes; return their sha256 digest."""
        ...

    def put_folder(self, folder: Path) -> dict[str, str]:
        """Store every file under ``folder`` (links skipped): relative path -> digest."""
        ...

    def uri(self, digest: str) -> str:
        """Where the content with this digest lives."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether the store holds this content."""
        ...

    def open(self, digest: str) -> BinaryIO:
        """Read the content (raises ``NotFoundError`` when it is not stored)."""
        ...

    def fetch(self, digest: str, folder: Path, name: str | None = None) -> Path:
        """Place the content in a local folder (as ``name``, else its digest); its path."""
        ...

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; return their sha256 digest."""
        ...

    def put_tree(self, folder: Path) -> str:
        """Store a whole folder: its files, then a manifest naming them (relative path ->
        digest, canonical JSON); return the manifest's digest, the folder's address."""
        ...

    def fetch_tree(self, digest: str, folder: Path) -> Path:
        """Rebuild the folder a manifest names under ``folder`` (every file's digest checked,
        written to a temporary name and renamed, so a half-fetched file is never seen)."""
        ...
