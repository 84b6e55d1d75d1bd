"""RayExecutor: each task run is one Ray task, on whichever node of the cluster can hold it.

The driver's working folder is not on the node. ``submit`` uploads the run's code snapshot
and each upstream output folder to the artifact store (``put_tree``; once per folder, they
are immutable) and sends their manifest digests; the node builds the working folder under
its own root, runs the command or callable and uploads ``output/``
(``signoff.executors._ray_node``). When the task ends, the driver fetches that output into
``execution.work_dir/output`` and writes ``records.jsonl`` there, so what the engine reads
after a task run is where it always was.

The Ray task is a streaming generator: a "started" marker first (until it comes the task is
waiting for resources), then the command's output in chunks, appended to the driver's
``stdout.log`` as they arrive, then the result. One thread per task run in flight follows
its stream and puts the outcome on the queue ``wait_any`` reads. Ray never retries a task
(``max_retries=0``): the engine's retry policy decides, and a lost node or worker is an
outcome like any other failure.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from signoff.domain.ports_execution import ArtifactRef, ArtifactStore, TaskExecution, TaskOutcome
from signoff.domain.specs import Resources
from signoff.errors import ExecutionError, SignoffError
from signoff.executors._ray_node import MANIFEST_SCHEME, NodeJob, NodeResult, run_on_node
from signoff.executors.local import LOG_FILE
from signoff.executors.materialise import local_folder

__all__ = ["RayExecutor", "ray_missing"]

_NOTE_AFTER = 1.0  # a task not placed after this long gets its "waiting for resources" line
_RECHECK = 5.0  # a task past its placement timeout on a busy cluster: look again this often
_CANCEL_GRACE = 5.0  # after a cancel, the node has this long before its worker is killed
_MB = 2**20


def ray_missing() -> str | None:
    """Why Ray cannot be used here (not installed), or None."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "the Ray executor needs Ray: pip install 'signoff[ray]'"
    return None


class RayExecutor:
    """Runs task runs as Ray tasks on the cluster at ``address`` (None: a local Ray).

    ``open_store`` opens the artifact store at ``artifacts_url``; it is sent to the nodes as
    well (a module-level function travels by name), so each node opens the same store.
    ``base_env`` is added to every command's environment on the node (over the node's own).
    A task Ray cannot place within ``placement_timeout`` seconds, on a cluster where no node
    could ever hold it, fails with what it asked and what the cluster has.
    """

    def __init__(
        self,
        address: str | None,
        artifacts_url: str,
        placement_timeout: float,
        base_env: dict[str, str] | None = None,
        *,
        open_store: Callable[[str], ArtifactStore],
        cancel_grace: float = _CANCEL_GRACE,
    ) -> None:
        self.address = address
        self.artifacts_url = artifacts_url
        self.placement_timeout = placement_timeout
        self.cancel_grace = cancel_grace
        self._base_env = dict(base_env or {})
        self._open_store = open_store
        self._store: ArtifactStore | None = None
        self._uploaded: dict[str, str] = {}  # local folder -> manifest digest (immutable)
        self._done: queue.SimpleQueue[TaskOutcome] = queue.SimpleQueue()
        self._follows: dict[str, _Follow] = {}
        self._lock = threading.Lock()
        self._submitted: set[str] = set()
        self._remote: Any = None
        self._connected = False
        self._node_names: dict[str, str] = {}

    # ------------------------------------------------------------------ the Executor port
    def refusal(self, resources: Resources) -> str | None:
        """None: the cluster may grow; a task no node can place fails after the timeout."""
        return None

    def fits(self, resources: Resources) -> bool:
        """Always: Ray queues what it cannot place yet."""
        return True

    def in_flight(self) -> int:
        with self._lock:
            return len(self._submitted)

    def submit(self, execution: TaskExecution) -> None:
        with self._lock:
            self._submitted.add(execution.task_run_id)
        failed = self._start(execution)
        if failed is not None:
            self._done.put(failed)

    def wait_any(self, timeout: float | None = None) -> list[TaskOutcome]:
        """Block until at least one task run ended (or ``timeout``), return all that ended."""
        outcomes = self._drain()
        if not outcomes:
            wait = None if timeout is None else max(0.0, timeout)
            with contextlib.suppress(queue.Empty):
                outcomes.append(self._done.get(timeout=wait))
            outcomes.extend(self._drain())
        with self._lock:
            self._submitted.difference_update(o.task_run_id for o in outcomes)
            follows = [self._follows.pop(o.task_run_id, None) for o in outcomes]
        for follow in follows:
            if follow is not None:
                follow.thread.join()  # it has put its outcome: this returns at once
        return outcomes

    def _drain(self) -> list[TaskOutcome]:
        outcomes: list[TaskOutcome] = []
        while True:
            try:
                outcomes.append(self._done.get_nowait())
            except queue.Empty:
                return outcomes

    def cancel(self, task_run_id: str) -> None:
        """Cancel the Ray task (the node stops its command), then kill its worker if need be."""
        with self._lock:
            follow = self._follows.get(task_run_id)
        if follow is not None:
            follow.cancel(self.cancel_grace)

    def shutdown(self) -> None:
        """Cancel what is in flight; disconnect from Ray (stop it if this process started it)."""
        with self._lock:
            follows = list(self._follows.values())
        for follow in follows:
            follow.cancel(self.cancel_grace)
        for follow in follows:
            follow.thread.join(self.cancel_grace + 10.0)
        if self._connected:
            _SESSION.release()
            self._connected = False

    # ------------------------------------------------------------------ submitting
    def _start(self, execution: TaskExecution) -> TaskOutcome | None:
        trid = execution.task_run_id
        try:
            self._connect()
        except Exception as exc:  # Ray's errors on connecting are of many kinds
            return TaskOutcome(trid, -1, error=f"could not connect to Ray: {_one_line(exc)}")
        try:
            job = self._job(execution)
        except (OSError, SignoffError) as exc:
            error = f"could not upload the task run's inputs: {exc}"
            return TaskOutcome(trid, -1, error=error, executor="ray")
        options = _options(execution)
        ref = self._remote.options(**options).remote(job)
        follow = _Follow(self, execution, ref)
        with self._lock:
            self._follows[trid] = follow
        follow.thread.start()
        return None

    def _connect(self) -> None:
        if self._connected:
            return
        import ray

        _SESSION.acquire(self.address)
        self._connected = True
        if self._remote is None:
            self._remote = ray.remote(num_returns="streaming", max_retries=0)(run_on_node)

    def store(self) -> ArtifactStore:
        """The artifact store (opened on first use)."""
        if self._store is None:
            self._store = self._open_store(self.artifacts_url)
        return self._store

    def _upload(self, folder: str | Path) -> str:
        key = str(folder)
        digest = self._uploaded.get(key)
        if digest is None:
            digest = self._uploaded[key] = self.store().put_tree(Path(folder))
        return digest

    def _job(self, execution: TaskExecution) -> NodeJob:
        """The execution as the node gets it: its local folders as manifest uris."""
        code = execution.code
        folder = None if code is None else _local(code)
        if folder is not None:  # a run without a code folder (a flow built in Python) has none
            code = _manifest_uri(self._upload(folder)) if folder.is_dir() else None
        refs = tuple(self._sent_ref(ref) for ref in execution.input_refs)
        call_inputs = {name: self._upload(path) for name, path in execution.inputs.items()}
        sent = replace(execution, code=code, input_refs=refs, inputs={})
        return NodeJob(sent, self.artifacts_url, self._open_store, self._base_env, call_inputs)

    def _sent_ref(self, ref: ArtifactRef) -> ArtifactRef:
        folder = _local(ref.uri)
        return ref if folder is None else replace(ref, uri=_manifest_uri(self._upload(folder)))

    # ------------------------------------------------------------------ what the driver sees
    def node_name(self, node_id: str, host: str) -> str:
        """A node as people can tell it apart: its name (or address) and its Ray node id."""
        name = self._node_names.get(node_id)
        if name is None:
            for node in _nodes():
                if node.get("NodeID") == node_id:
                    name = node.get("NodeName") or node.get("NodeManagerAddress")
            name = self._node_names[node_id] = f"{name or host} (ray node {node_id[:12]})"
        return name

    def land(self, execution: TaskExecution, result: NodeResult) -> None:
        """Put the node's output and records where the engine reads them (driver's folder)."""
        work = execution.work_dir
        out = work / execution.output_dir
        if out.is_symlink():
            out.unlink()
        elif out.exists():  # an earlier attempt's output
            shutil.rmtree(out)
        assert result.output is not None
        self.store().fetch_tree(result.output, out)
        records = work / "records.jsonl"
        if result.records:
            records.write_bytes(result.records)
        else:
            records.unlink(missing_ok=True)


class _Follow:
    """One task run in flight: the thread that follows its Ray stream to an outcome."""

    def __init__(self, executor: RayExecutor, execution: TaskExecution, ref: Any) -> None:
        self.executor = executor
        self.execution = execution
        self.ref = ref
        self.cancelled = False
        self.node: str | None = None  # set once the node sent its "started" marker
        self.ended = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"ray-{execution.task_run_id[:8]}", daemon=True
        )

    def cancel(self, grace: float) -> None:
        import ray

        if self.ended.is_set() or self.cancelled:
            return
        self.cancelled = True
        with contextlib.suppress(Exception):  # already ended: nothing to cancel
            ray.cancel(self.ref, recursive=True)
        timer = threading.Timer(grace, self._force)
        timer.daemon = True
        timer.start()

    def _force(self) -> None:
        import ray

        if not self.ended.is_set():
            with contextlib.suppress(Exception):
                ray.cancel(self.ref, force=True)

    def _run(self) -> None:
        trid = self.execution.task_run_id
        try:
            outcome = self._follow()
        except Exception as exc:  # an executor bug must not lose the outcome
            outcome = TaskOutcome(trid, -1, error=f"executor error: {_one_line(exc)}")
        self.ended.set()
        if outcome.executor is None:
            outcome = replace(outcome, executor="ray")
        self.executor._done.put(outcome)

    def _follow(self) -> TaskOutcome:
        import ray

        trid = self.execution.task_run_id
        work = self.execution.work_dir
        work.mkdir(parents=True, exist_ok=True)
        with (work / LOG_FILE).open("ab") as log:
            try:
                placed = self._await_start(log)
                if isinstance(placed, TaskOutcome):
                    return placed
                node = self.node = self.executor.node_name(placed["node_id"], placed["host"])
                for ref in self.ref:
                    kind, data = ray.get(ref)
                    if kind == "log":
                        log.write(data)
                        log.flush()
                    elif kind == "result":
                        return self._ended(data, node)
            except ray.exceptions.TaskCancelledError:
                return TaskOutcome(trid, -1, error="cancelled", node=self.node)
            except ray.exceptions.RayError as exc:  # a node or worker lost, or an object
                error = f"lost on Ray: {_one_line(exc)}"
                return TaskOutcome(trid, -1, error=error, node=self.node)
        return TaskOutcome(trid, -1, error="the Ray task ended without a result", node=self.node)

    def _ended(self, result: NodeResult, node: str) -> TaskOutcome:
        trid = self.execution.task_run_id
        if result.exit_code == 0 and result.error is None:
            try:
                self.executor.land(self.execution, result)
            except (OSError, SignoffError) as exc:
                return TaskOutcome(trid, -1, error=f"could not fetch the output: {exc}", node=node)
        return TaskOutcome(trid, result.exit_code, error=result.error, node=node)

    def _await_start(self, log: Any) -> dict[str, str] | TaskOutcome:
        """Wait for the node's "started" marker; a task never placed fails with the reason."""
        import ray

        begun = time.monotonic()
        deadline = begun + self.executor.placement_timeout
        noted = False
        while True:
            now = time.monotonic()
            wait = (_NOTE_AFTER - (now - begun)) if not noted else deadline - now
            ready, _ = ray.wait([self.ref], timeout=max(0.01, min(wait, 1.0)))
            if ready:
                kind, data = ray.get(next(self.ref))
                if kind != "started":
                    raise ExecutionError(f"the node sent {kind!r} before it started")
                return dict(data)
            now = time.monotonic()
            if self.cancelled:
                continue  # Ray ends the stream with TaskCancelledError
            if not noted and now - begun >= _NOTE_AFTER:
                asks, has = _asks(self.execution), _cluster()
                note = f"waiting for resources on Ray: asks {asks}; cluster has {has}\n"
                log.write(note.encode())
                log.flush()
                noted = True
            if now >= deadline:
                if _placeable(_asks(self.execution)):  # busy, not impossible: keep waiting
                    deadline = now + _RECHECK  # (a node may leave the cluster meanwhile)
                    continue
                ray.cancel(self.ref, force=True)
                self.cancelled = True
                asks, has = _asks(self.execution), _cluster()
                timeout = self.executor.placement_timeout
                error = f"no Ray node could place it within {timeout:g}s: asks {asks}; "
                error += f"cluster has {has}"
                return TaskOutcome(self.execution.task_run_id, -1, error=error)


class _Session:
    """The process's one Ray connection, shared by every RayExecutor (one per driven run).

    A connection to a cluster is closed when the last run using it ends or waits at a gate.
    A local Ray this process started is kept until the process exits: starting one costs
    seconds, and a worker driving run after run would pay it for every run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._started = False  # this process initialised Ray, so it shuts it down
        self._local = False  # ... and it is a local Ray, kept for the process's life

    def acquire(self, address: str | None) -> None:
        import ray

        with self._lock:
            if self._users == 0 and not ray.is_initialized():
                if address is None:  # a local Ray for this process
                    ray.init(
                        include_dashboard=False,
                        log_to_driver=False,
                        logging_level=logging.WARNING,
                    )
                    self._local = True
                    atexit.register(ray.shutdown)
                else:
                    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
                self._started = True
            self._users += 1

    def release(self) -> None:
        import ray

        with self._lock:
            self._users -= 1
            if self._users == 0 and self._started and not self._local:
                ray.shutdown()
                self._started = False


_SESSION = _Session()


def _options(execution: TaskExecution) -> dict[str, Any]:
    task = execution.env.get("SIGNOFF_TASK", "task")
    options: dict[str, Any] = {
        "num_cpus": execution.cpu,
        "num_gpus": execution.gpu,
        "name": f"signoff {task} {execution.task_run_id[:8]}",
    }
    if execution.memory_mb:
        options["memory"] = execution.memory_mb * _MB
    if execution.custom:
        options["resources"] = dict(execution.custom)
    return options


def _asks(execution: TaskExecution) -> dict[str, float]:
    """What the task asks of Ray, in Ray's resource names (memory in MB)."""
    asks: dict[str, float] = {"CPU": execution.cpu}
    if execution.gpu:
        asks["GPU"] = execution.gpu
    if execution.memory_mb:
        asks["memory_mb"] = execution.memory_mb
    asks.update(dict(execution.custom))
    return asks


def _readable(resources: Mapping[str, float]) -> dict[str, float]:
    """Ray's resources without its internal names; memory in MB, as tasks ask for it."""
    shown: dict[str, float] = {}
    for name, amount in sorted(resources.items()):
        if name.startswith("node:") or name in ("object_store_memory", "accelerator_type"):
            continue
        if name == "memory":
            shown["memory_mb"] = round(amount / _MB)
        else:
            shown[name] = amount
    return shown


def _cluster() -> dict[str, float]:
    import ray

    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return _readable(resources)


def _placeable(asks: Mapping[str, float]) -> bool:
    """Whether some live node has, in all, what the task asks (it is only busy now)."""

    for node in _nodes():
        if not node.get("Alive"):
            continue
        has = _readable(node.get("Resources", {}))
        if all(has.get(name, 0.0) >= amount for name, amount in asks.items() if amount):
            return True
    return False


def _nodes() -> list[dict[str, Any]]:
    import ray

    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return nodes


def _local(uri: str) -> Path | None:
    """The local folder a uri names, or None for a remote one (passed on as it is)."""
    scheme = urlsplit(uri).scheme
    return local_folder(uri) if scheme == "file" or len(scheme) <= 1 else None


def _manifest_uri(digest: str) -> str:
    return f"{MANIFEST_SCHEME}:{digest}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
