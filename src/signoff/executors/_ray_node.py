"""The node side of the Ray executor: one task run inside a Ray worker, on whichever node.

``run_on_node`` is the body of the Ray task (a streaming generator). It yields, in order:
``("started", node facts)`` as soon as Ray placed it, ``("log", bytes)`` chunks of the
command's output while it runs, and one ``("result", ...)`` last. The working folder is
built under this node's own root (``SIGNOFF_RAY_NODE_ROOT`` in the node's environment, else
``<tmp>/signoff-ray``): the code snapshot and the upstream outputs come from the artifact
store by manifest digest (fetched once per node into ``<root>/cache``), and a finished
command's ``output/`` goes back to the store with ``put_tree``. Only an exit code 0 uploads an
output, so a crashed attempt never leaves a manifest that looks finished.

The driver's working-folder path (which ``{{ output_dir }}``, ``SIGNOFF_OUTPUT_DIR`` and the
like name) is replaced by the node's folder in the command, its environment and its params.
The command is the leader of its own process group and is killed by the kernel if the Ray
worker running it dies (``PR_SET_PDEATHSIG``); a timeout or a cancel stops the whole group.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import importlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from signoff.domain.ports_execution import ArtifactStore, TaskExecution
from signoff.errors import ExecutionError, SignoffError
from signoff.executors.local import CUDA_ENV, LOG_FILE, _accepted, _stop_command
from signoff.executors.materialise import materialise
from signoff.tracking.context import TaskContext, task_context

__all__ = ["MANIFEST_SCHEME", "NODE_ROOT_ENV", "NodeJob", "node_root", "run_on_node"]

NODE_ROOT_ENV = "SIGNOFF_RAY_NODE_ROOT"  # set in a node's environment (`ray start`)
MANIFEST_SCHEME = "signoff-manifest"  # uri of a folder in the store: signoff-manifest:<digest>
_CHUNK = 64 * 1024  # a log chunk is sent when it reaches this size ...
_FLUSH = 0.2  # ... or when it is this many seconds old
_PR_SET_PDEATHSIG = 1

Message = tuple[str, Any]


@dataclass(frozen=True)
class NodeJob:
    """What the driver sends: the execution (its folders as manifest uris) and the store."""

    execution: TaskExecution
    artifacts_url: str
    open_store: Callable[[str], ArtifactStore]
    base_env: dict[str, str] = field(default_factory=dict)
    call_inputs: dict[str, str] = field(default_factory=dict)  # name -> manifest digest


@dataclass(frozen=True)
class NodeResult:
    """How the task run ended on the node; ``output`` is set only after a clean exit."""

    exit_code: int
    error: str | None = None
    output: str | None = None  # the output folder's manifest digest
    records: bytes = b""  # records.jsonl as the task wrote it


def node_root() -> Path:
    """This node's root for working folders and fetched folders."""
    # Read on the node itself (no settings object travels here): each node may set its own.
    configured = os.environ.get(NODE_ROOT_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "signoff-ray"


def run_on_node(job: NodeJob) -> Iterator[Message]:
    """The Ray task's body: started marker, log chunks, then the result (see module doc)."""
    import ray

    context = ray.get_runtime_context()
    yield "started", {"node_id": context.get_node_id(), "host": socket.gethostname()}
    root = node_root()
    work = root / "work" / f"{job.execution.task_run_id}-{uuid.uuid4().hex[:8]}"
    try:
        result = yield from _run(job, root, work, [str(g) for g in ray.get_gpu_ids()])
        yield "result", result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(
    job: NodeJob, root: Path, work: Path, gpu_ids: list[str]
) -> Generator[Message, None, NodeResult]:
    store = job.open_store(job.artifacts_url)
    fetcher = _Fetcher(store, root / "cache")
    execution = _on_node(job.execution, work, gpu_ids)
    try:
        materialise(execution, fetcher.fetch)
        inputs = {name: fetcher.folder(digest) for name, digest in job.call_inputs.items()}
    except (OSError, SignoffError) as exc:
        return NodeResult(-1, f"could not prepare the working folder: {exc}")
    if execution.call is not None:
        code = fetcher.fetch(execution.code) if execution.code else None
        ended = _call(dataclasses.replace(execution, inputs=inputs), code)
        if ended.error and (work / LOG_FILE).is_file():
            yield "log", (work / LOG_FILE).read_bytes()
    else:
        ended = yield from _command(execution, job.base_env)
    if ended.exit_code != 0 or ended.error:
        return ended
    try:
        output = store.put_tree(work / execution.output_dir)
    except (OSError, SignoffError) as exc:
        return NodeResult(-1, f"could not upload the output: {exc}")
    records = work / "records.jsonl"
    return NodeResult(0, output=output, records=records.read_bytes() if records.is_file() else b"")


def _on_node(execution: TaskExecution, work: Path, gpu_ids: list[str]) -> TaskExecution:
    """The execution with the driver's folder replaced by this node's, and the node's GPUs."""
    driver = str(execution.work_dir)

    def moved(value: Any) -> Any:
        return value.replace(driver, str(work)) if isinstance(value, str) else value

    env = {k: moved(v) for k, v in execution.env.items()}
    if gpu_ids:
        env[CUDA_ENV] = ",".join(gpu_ids)
    return dataclasses.replace(
        execution,
        work_dir=work,
        command=moved(execution.command),
        env=env,
        params={k: moved(v) for k, v in execution.params.items()},
        fresh=True,  # a new folder on this node: nothing of an earlier attempt is here
    )


def _call(execution: TaskExecution, code: Path | None) -> NodeResult:
    """A ``call:`` task in this Ray worker, its module found in the run's code snapshot."""
    assert execution.call is not None
    module_name, _, qualname = execution.call.partition(":")
    work = execution.work_dir
    ctx = TaskContext(
        run_id=execution.env.get("SIGNOFF_RUN_ID", ""),
        task=execution.env.get("SIGNOFF_TASK", ""),
        task_run_id=execution.task_run_id,
        output_dir=work / "output",
        inputs_dir=work / "inputs",
        records_file=work / "records.jsonl",
        params=dict(execution.params),
        inputs=dict(execution.inputs),
    )
    added = code is not None and str(code) not in sys.path
    if added:
        sys.path.insert(0, str(code))
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
        target = getattr(target, "__wrapped_task__", target)
        with task_context(ctx):
            target(**_accepted(target, execution.params))
    except Exception as exc:  # user code: any error is the task's failure
        work.mkdir(parents=True, exist_ok=True)
        with (work / LOG_FILE).open("a") as log:
            log.write(traceback.format_exc())
        return NodeResult(1, f"{type(exc).__name__}: {exc}")
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(code))
    return NodeResult(0)


_SETPRIV = shutil.which("setpriv") if sys.platform == "linux" else None
# Without util-linux's setpriv the death signal is set in the child before exec; that makes
# Python fork the (large) Ray worker instead of spawning, about 10 ms more per command.
_NEEDS_PREEXEC = sys.platform == "linux" and _SETPRIV is None


def _shell_line(command: str) -> list[str]:
    """The command as a shell line, under ``setpriv --pdeathsig KILL`` where it exists."""
    line = ["/bin/sh", "-c", command]  # commands are shell lines, as in cnvrg flow files
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *line] if _SETPRIV else line


def _die_with_parent() -> None:
    """In the child before exec: the kernel kills it when the Ray worker that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _command(
    execution: TaskExecution, base_env: dict[str, str]
) -> Generator[Message, None, NodeResult]:
    """Run the command, yielding its output as it comes; stop it on timeout or cancel."""
    env = {k: v for k, v in os.environ.items() if k != CUDA_ENV}
    env.update(base_env)
    env.update(execution.env)
    bin_dir = str(Path(sys.executable).parent)  # `python` is the node's interpreter
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    try:
        proc = subprocess.Popen(
            _shell_line(execution.command),
            cwd=execution.work_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if _NEEDS_PREEXEC else None,  # noqa: PLW1509
        )
    except OSError as exc:
        return NodeResult(-1, f"could not start: {exc}")
    assert proc.stdout is not None
    deadline = None if execution.timeout is None else time.monotonic() + execution.timeout
    try:
        timed_out = yield from _stream(proc, deadline)
    except BaseException:  # a cancel (KeyboardInterrupt from Ray) or a closed generator
        _stop_command(proc.pid)
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    if timed_out:
        return NodeResult(-1, f"timed out after {execution.timeout:g}s")
    code = proc.wait()
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return NodeResult(code, f"killed by {name}")
    return NodeResult(code)


def _stream(
    proc: subprocess.Popen[bytes], deadline: float | None
) -> Generator[Message, None, bool]:
    """Yield output chunks until the command ends; True if its deadline passed first."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = bytearray()
    sent_at = time.monotonic()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            wait = _FLUSH if pending else 1.0
            if deadline is not None:
                wait = min(wait, deadline - now)
            data = None
            if selector.select(max(0.0, wait)):
                data = os.read(fd, _CHUNK)
                if not data:  # every writer closed the pipe: the command is done
                    break
                pending += data
            now = time.monotonic()
            if pending and (len(pending) >= _CHUNK or now - sent_at >= _FLUSH or not data):
                yield "log", bytes(pending)
                pending.clear()
                sent_at = now
            if deadline is not None and now >= deadline:
                _stop_command(proc.pid)
                proc.wait()
                return True
            if data is None and proc.poll() is not None:
                break  # the leader ended; what it left running may hold the pipe open
    if pending:
        yield "log", bytes(pending)
    if deadline is not None:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            proc.wait(remaining)
        except subprocess.TimeoutExpired:
            _stop_command(proc.pid)
            proc.wait()
            return True
    return False


class _Fetcher:
    """Folders from the store by manifest digest, fetched once per node (immutable)."""

    def __init__(self, store: ArtifactStore, cache: Path) -> None:
        self.store = store
        self.cache = cache

    def fetch(self, uri: str) -> Path:
        """The local folder of a ``signoff-manifest:<digest>`` uri."""
        parts = urlsplit(uri)
        if parts.scheme != MANIFEST_SCHEME:
            raise ExecutionError(f"cannot fetch {uri}: not a folder of the artifact store")
        return self.folder(parts.path)

    def folder(self, digest: str) -> Path:
        target = self.cache / digest
        if target.is_dir():
            return target
        # Fetched under a name of its own, then renamed: a half-fetched folder is never seen.
        partial = self.cache / f".{digest}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        try:
            self.store.fetch_tree(digest, partial)
            with contextlib.suppress(OSError):  # another task on this node placed it first
                partial.rename(target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        if not target.is_dir():
            raise ExecutionError(f"could not place folder {digest[:12]}… in {self.cache}")
        return target
