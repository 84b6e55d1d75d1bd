"""Start and stop endpoint processes on this machine (``python -m signoff.serving``).

Each endpoint runs in its own session, so it outlives the process that started it (a CLI
command, a worker); it is found again by its pid and stopped through its process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from signoff.errors import ExecutionError

__all__ = ["EndpointProcess", "LocalEndpointRunner"]

_HOST = "127.0.0.1"
_POLL_INTERVAL = 0.05
_LOG_TAIL_LINES = 12
_KILL_WAIT = 5.0


@dataclass(frozen=True)
class EndpointProcess:
    """A running endpoint process: where it answers and which pid (= process group) it has."""

    url: str
    port: int
    pid: int


class LocalEndpointRunner:
    """Starts endpoint processes on loopback, waits for them to be ready, and stops them.

    Logs go to ``home/endpoints/<name>/endpoint.log`` (appended across starts).
    """

    def __init__(
        self, home: Path, python: str = sys.executable, ready_timeout: float = 60.0
    ) -> None:
        self.home = home
        self.python = python
        self.ready_timeout = ready_timeout
        # Children this runner started, so it can reap them instead of leaving zombies.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def log_path(self, name: str) -> Path:
        """Where the endpoint ``name`` writes its output."""
        return self.home / "endpoints" / name / "endpoint.log"

    def start(
        self, name: str, model_dir: Path, digest: str, model_version: str, port: int | None
    ) -> EndpointProcess:
        """Start an endpoint and return once ``/health`` reports ``model_version``.

        Raises :class:`ExecutionError` (with the end of its log) if the process exits first or
        is not ready within ``ready_timeout`` seconds; in the latter case it is killed.
        """
        port = _free_port() if port is None else port
        log_path = self.log_path(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            self.python,
            "-m",
            "signoff.serving",
            "--name",
            name,
            "--model-dir",
            str(model_dir),
            "--digest",
            digest,
            "--model-version",
            model_version,
            "--port",
            str(port),
            "--host",
            _HOST,
        ]
        with log_path.open("ab") as log:
            log.write(
                f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} start {model_version}\n".encode()
            )
            log.flush()
            log_offset = log.tell()
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self._children[proc.pid] = proc
        endpoint = EndpointProcess(url=f"http://{_HOST}:{port}", port=port, pid=proc.pid)
        self._wait_ready(
            name,
            endpoint=endpoint,
            model_version=model_version,
            proc=proc,
            log_path=log_path,
            log_offset=log_offset,
        )
        return endpoint

    def _wait_ready(
        self,
        name: str,
        *,
        endpoint: EndpointProcess,
        model_version: str,
        proc: subprocess.Popen[bytes],
        log_path: Path,
        log_offset: int,
    ) -> None:
        deadline = time.monotonic() + self.ready_timeout
        with httpx.Client(timeout=httpx.Timeout(1.0, connect=0.5), trust_env=False) as client:
            while True:
                code = proc.poll()
                if code is not None:
                    self._children.pop(proc.pid, None)
                    tail = _log_tail(log_path, log_offset)
                    raise ExecutionError(
                        f"endpoint {name} exited with code {code} before it was ready: {tail}"
                    )
                if _reports_version(client, endpoint.url, model_version):
                    return
                if time.monotonic() >= deadline:
                    self.stop(proc.pid)
                    tail = _log_tail(log_path, log_offset)
                    raise ExecutionError(
                        f"endpoint {name} was not ready after {self.ready_timeout:g}s "
                        f"and was stopped: {tail}"
                    )
                time.sleep(_POLL_INTERVAL)

    def stop(self, pid: int, timeout: float = 10.0) -> None:
        """Stop an endpoint: SIGTERM to its process group, SIGKILL after ``timeout`` seconds.

        Does nothing if the process is already gone.
        """
        if not self.is_alive(pid):
            return
        _signal_group(pid, signal.SIGTERM)
        if self._wait_gone(pid, timeout):
            return
        _signal_group(pid, signal.SIGKILL)
        self._wait_gone(pid, _KILL_WAIT)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.is_alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_INTERVAL)
        return True

    def is_alive(self, pid: int) -> bool:
        """Whether ``pid`` is a running endpoint process (zombies and other programs are not)."""
        child = self._children.get(pid)
        if child is not None:
            if child.poll() is None:
                return True
            del self._children[pid]
            return False
        with contextlib.suppress(ChildProcessError):
            # Our child, but started by an earlier runner object in this process: reap it.
            reaped, _ = os.waitpid(pid, os.WNOHANG)
            if reaped == pid:
                return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False  # someone else's process: not one we started
        return _proc_is_endpoint(pid)

    def health(self, url: str) -> bool:
        """Whether ``url/health`` answers 200."""
        try:
            with httpx.Client(timeout=2.0, trust_env=False) as client:
                return client.get(f"{url.rstrip('/')}/health").status_code == 200
        except httpx.HTTPError:
            return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _reports_version(client: httpx.Client, url: str, model_version: str) -> bool:
    try:
        response = client.get(f"{url}/health")
        if response.status_code != 200:
            return False
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(body, dict) and body.get("model_version") == model_version


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Endpoints lead their own session (start_new_session), so pgid == pid; fall back to the
    # process alone if it is not a group leader.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _proc_is_endpoint(pid: int) -> bool:
    """Read /proc (Linux): not a zombie, and its command line is an endpoint's."""
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except FileNotFoundError:
        return not proc.parent.is_dir()  # no /proc on this system: trust os.kill
    except OSError:
        return False
    # The state letter follows the command name, which is in parentheses and may hold spaces.
    state = stat[stat.rfind(")") + 2 : stat.rfind(")") + 3]
    if state in ("Z", "X"):
        return False
    return b"signoff.serving" in cmdline


def _log_tail(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return "(no output)"
    return " | ".join(lines[-_LOG_TAIL_LINES:])
