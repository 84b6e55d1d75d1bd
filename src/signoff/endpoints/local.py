"""Start, stop and roll over endpoint processes on this machine (``python -m signoff.serving``).

Each endpoint runs in its own session, so it outlives the process that started it (a CLI
command, a worker); it is found again by its pid, recognised by its command line (psutil,
so not only on Linux) and stopped through its process group and descendants.
Model versions are swapped inside a running process through its admin API on loopback,
authenticated by a random token that lives in ``<home>/endpoints/<name>/admin.token``
(mode 0600) and reaches the process through its environment.

An endpoint's name becomes the folder ``<home>/endpoints/<name>`` (0700; its log 0600): the
name must follow :func:`signoff.domain.names.check_endpoint_name`, and the folder, symlinks
resolved, must sit directly in ``<home>/endpoints``, whatever the caller checked before.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import psutil

from signoff import failpoints
from signoff.domain.names import InvalidNameError, check_endpoint_name
from signoff.domain.ports import EndpointState, Rollout, RolloverResult, VersionState
from signoff.errors import ExecutionError

__all__ = ["TOKEN_ENV", "EndpointProcess", "LocalEndpointRunner"]

# How the admin token reaches the endpoint process (the name of a variable, not a secret).
TOKEN_ENV = "SIGNOFF_ENDPOINT_TOKEN"  # noqa: S105
_HOST = "127.0.0.1"
_POLL_INTERVAL = 0.05
_LOG_TAIL_LINES = 12
_KILL_WAIT = 5.0
_ADMIN_TIMEOUT = 10.0
_WATCH_INTERVAL = 0.2
_MIN_REQUESTS_TO_JUDGE = 20  # during probation, fewer requests than this never roll back early


@dataclass(frozen=True)
class EndpointProcess:
    """A running endpoint process: where it answers and which pid (= process group) it has."""

    url: str
    port: int
    pid: int


class LocalEndpointRunner:
    """Starts endpoint processes on loopback, swaps model versions inside them, stops them.

    Logs go to ``home/endpoints/<name>/endpoint.log`` (appended across starts). A process
    gets ``base_env`` (default: this process's environment: the store's location and the
    prediction log settings travel that way) without signoff's secrets
    (``SIGNOFF_*SECRET*``, ``*PASSWORD*``, ``*TOKEN*``), plus ``SIGNOFF_HOME`` and its
    admin token.
    """

    def __init__(
        self,
        home: Path,
        python: str = sys.executable,
        ready_timeout: float = 60.0,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = home
        self.python = python
        self.ready_timeout = ready_timeout
        self._base_env = dict(base_env if base_env is not None else os.environ)
        # Children this runner started, so it can reap them instead of leaving zombies.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def folder(self, name: str) -> Path:
        """``home/endpoints/<name>``, refused (:class:`InvalidNameError`) if it could escape.

        The last line of defence where a name becomes a path: the name must follow the naming
        rule, and the folder, symlinks resolved, must be directly inside ``home/endpoints``.
        """
        check_endpoint_name(name)
        root = self.home.resolve() / "endpoints"
        folder = (root / name).resolve()
        if folder.parent != root or folder.name != name:
            raise InvalidNameError(f"endpoint folder {root / name} leads outside {root}: refused")
        return folder

    def log_path(self, name: str) -> Path:
        """Where the endpoint ``name`` writes its output."""
        return self.folder(name) / "endpoint.log"

    def process_path(self, name: str) -> Path:
        """Where the last started process of endpoint ``name`` is noted (pid, port; 0600)."""
        return self.home / "endpoints" / name / "process.json"

    def find(self, name: str) -> EndpointProcess | None:
        """The process last started for endpoint ``name``, if it still runs and answers.

        How a deploy finds an endpoint process that a crashed driver started but never
        recorded, to adopt it instead of starting a second one on another port. A process
        that runs but does not answer ``/health`` is stopped (it would only hold the port).
        """
        try:
            noted = json.loads(self.process_path(name).read_text())
            pid, port = int(noted["pid"]), int(noted["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not self.is_alive(pid) or f"--name\0{name}\0" not in _cmdline(pid):
            return None
        url = f"http://{_HOST}:{port}"
        deadline = time.monotonic() + 10.0
        with httpx.Client(timeout=httpx.Timeout(1.0, connect=0.5), trust_env=False) as client:
            while True:
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        return EndpointProcess(url=url, port=port, pid=pid)
                except httpx.HTTPError:
                    pass
                if time.monotonic() >= deadline:
                    self.stop(pid)
                    return None
                time.sleep(_POLL_INTERVAL)

    def _note_process(self, name: str, endpoint: EndpointProcess, model_version: str) -> None:
        path = self.process_path(name)
        body = {"pid": endpoint.pid, "port": endpoint.port, "model_version": model_version}
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(body, f)
        os.replace(tmp, path)

    def token_path(self, name: str) -> Path:
        """Where the admin token of the endpoint ``name`` is kept (mode 0600)."""
        return self.folder(name) / "admin.token"

    def start(
        self, name: str, model_dir: Path, digest: str, model_version: str, port: int | None
    ) -> EndpointProcess:
        """Start an endpoint and return once ``/health`` reports ``model_version``.

        Raises :class:`ExecutionError` (with the end of its log) if the process exits first or
        is not ready within ``ready_timeout`` seconds; in the latter case it is killed.
        """
        port = _free_port() if port is None else port
        log_path = self.log_path(name)
        _private_folder(log_path.parent)
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
        # signoff's own secrets (link signing key, SMTP password, ...) stay out of a process
        # that may run a model's code; it gets its admin token instead.
        env = {k: v for k, v in self._base_env.items() if not _is_signoff_secret(k)}
        env["SIGNOFF_HOME"] = str(self.home)
        env[TOKEN_ENV] = self._ensure_token(name)
        with _open_log(log_path) as log:
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
                env=env,
            )
        self._children[proc.pid] = proc
        endpoint = EndpointProcess(url=f"http://{_HOST}:{port}", port=port, pid=proc.pid)
        self._note_process(name, endpoint, model_version)
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
        # Not is_alive: an exiting process has an empty command line before it is a zombie,
        # and the signalled process was checked to be an endpoint already.
        while self._running(pid, endpoint_only=False):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_INTERVAL)
        return True

    def is_alive(self, pid: int) -> bool:
        """Whether ``pid`` is a running endpoint process (zombies and other programs are not)."""
        return self._running(pid, endpoint_only=True)

    def _running(self, pid: int, *, endpoint_only: bool) -> bool:
        child = self._children.get(pid)
        if child is not None:
            if child.poll() is None:
                return True
            del self._children[pid]
            return False
        try:
            proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return False
        with contextlib.suppress(psutil.TimeoutExpired, psutil.Error):
            # Our child, but started by an earlier runner object in this process: if it has
            # ended, this reaps it. (Anything still running answers TimeoutExpired at once.)
            proc.wait(timeout=0)
            return False
        return _proc_is_running(proc, endpoint_only=endpoint_only)

    def health(self, url: str) -> bool:
        """Whether ``url/health`` answers 200."""
        try:
            with httpx.Client(timeout=2.0, trust_env=False) as client:
                return client.get(f"{url.rstrip('/')}/health").status_code == 200
        except httpx.HTTPError:
            return False

    # ------------------------------------------------------------------ admin API
    def load(self, name: str, url: str, model_dir: Path, digest: str, model_version: str) -> None:
        """Load ``model_version`` beside the serving one (digest check, warm-up; no traffic).

        Raises :class:`ExecutionError` with the endpoint's reason when it refuses (wrong
        digest, a folder that does not load, a failed warm-up); what it serves is untouched.
        """
        body = {"model_dir": str(model_dir), "digest": digest, "model_version": model_version}
        self._admin(name, url, "POST", "/admin/load", body, timeout=self.ready_timeout)

    def set_traffic(self, name: str, url: str, traffic: Mapping[str, int]) -> None:
        """Switch the traffic split in one step (percent per version, adding up to 100)."""
        self._admin(name, url, "POST", "/admin/traffic", dict(traffic))

    def unload(self, name: str, url: str, model_version: str) -> None:
        """Drain and forget a version that gets no traffic."""
        body = {"model_version": model_version}
        self._admin(name, url, "POST", "/admin/unload", body, timeout=60.0)

    def state(self, name: str, url: str) -> EndpointState:
        """The versions the endpoint holds, their shares and their counts."""
        data = self._admin(name, url, "GET", "/admin/state")
        versions = tuple(
            VersionState(
                model_version=str(v["model_version"]),
                digest=str(v["digest"]),
                traffic=int(v["traffic"]),
                requests=int(v["requests"]),
                errors=int(v["errors"]),
                in_flight=int(v.get("in_flight", 0)),
                model_dir=v.get("model_dir"),
            )
            for v in data.get("versions", [])
        )
        return EndpointState(endpoint=str(data.get("endpoint", name)), versions=versions)

    def rollover(
        self, name: str, url: str, rollout: Rollout, heartbeat: Callable[[], None] | None = None
    ) -> RolloverResult:
        """Load a version beside the serving one, switch traffic to it, then watch it.

        A canary (``rollout.traffic`` below 100) leaves the rest to the serving version. An
        error rate above ``rollout.max_error_rate`` during ``rollout.probation_seconds``
        after the switch returns all traffic to the version that served before (the
        result then says ``rolled_back`` and why). Versions other than the new one and the
        one before it are drained and unloaded; the one before stays loaded, so a rollback
        is a switch too. ``heartbeat`` is called at every look during probation (the caller
        keeps its own leases alive with it).
        """
        model_version, traffic = rollout.model_version, rollout.traffic
        if not 0 < traffic <= 100:
            raise ExecutionError(f"traffic must be a percent between 1 and 100, not {traffic}")
        started = time.monotonic()
        previous = self.state(name, url).primary
        self.load(name, url, rollout.model_dir, rollout.digest, model_version)
        failpoints.reached("rollover.after_load")
        if previous is None or previous == model_version or traffic == 100:
            split = {model_version: 100}
        else:
            split = {previous: 100 - traffic, model_version: traffic}
        self.set_traffic(name, url, split)
        switched = time.monotonic() - started
        failpoints.reached("rollover.after_switch")
        if previous == model_version:
            previous = None
        keep = {model_version, *([previous] if previous else [])}
        verdict, requests, errors = self._watch(
            name,
            url,
            model_version,
            previous,
            rollout.probation_seconds,
            rollout.max_error_rate,
            heartbeat,
        )
        rolled_back = verdict is not None and previous is not None
        if rolled_back and previous is not None:
            split = {previous: 100}
            self.set_traffic(name, url, split)
            keep = {previous}
        self._unload_all_but(name, url, keep)
        return RolloverResult(
            model_version=model_version,
            previous=previous,
            traffic=split,
            seconds=switched,
            rolled_back=rolled_back,
            reason=verdict,
            requests=requests,
            errors=errors,
        )

    def _watch(
        self,
        name: str,
        url: str,
        model_version: str,
        previous: str | None,
        seconds: float,
        max_error_rate: float,
        heartbeat: Callable[[], None] | None,
    ) -> tuple[str | None, int, int]:
        """Watch the new version's error rate for ``seconds``: a reason when it is too high."""
        if seconds <= 0 or previous is None:
            return None, 0, 0
        first = self.state(name, url).version(model_version)
        base = (first.requests, first.errors) if first else (0, 0)
        started = time.monotonic()
        requests = errors = 0
        while True:
            elapsed = time.monotonic() - started
            time.sleep(max(0.0, min(_WATCH_INTERVAL, seconds - elapsed)))
            if heartbeat is not None:
                heartbeat()
            now = self.state(name, url).version(model_version)
            if now is not None:
                requests, errors = now.requests - base[0], now.errors - base[1]
            elapsed = time.monotonic() - started
            done = elapsed >= seconds
            judged = requests >= _MIN_REQUESTS_TO_JUDGE or (done and requests > 0)
            if judged and errors / requests > max_error_rate:
                reason = (
                    f"{model_version} failed {errors} of {requests} requests "
                    f"({errors / requests:.0%}) in its first {elapsed:.1f}s, above the "
                    f"{max_error_rate:.0%} allowed; traffic went back to {previous}"
                )
                return reason, requests, errors
            if done:
                return None, requests, errors

    def _unload_all_but(self, name: str, url: str, keep: set[str]) -> None:
        for version in self.state(name, url).versions:
            if version.model_version not in keep and version.traffic == 0:
                self.unload(name, url, version.model_version)

    def _ensure_token(self, name: str) -> str:
        """The endpoint's admin token: read, or created (random, mode 0600) on first start."""
        path = self.token_path(name)
        with contextlib.suppress(FileNotFoundError):
            token = path.read_text().strip()
            if token:
                path.chmod(0o600)
                return token
        _private_folder(path.parent)
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
        path.chmod(0o600)
        return token

    def _admin(
        self,
        name: str,
        url: str,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float = _ADMIN_TIMEOUT,
    ) -> dict[str, Any]:
        """One admin call; a refusal or silence becomes an ExecutionError with the reason."""
        try:
            token = self.token_path(name).read_text().strip()
        except FileNotFoundError:
            raise ExecutionError(
                f"endpoint {name} has no admin token at {self.token_path(name)}; "
                "stop it and deploy again to restart it"
            ) from None
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.Client(
                timeout=httpx.Timeout(timeout, connect=2.0), trust_env=False
            ) as client:
                response = client.request(
                    method, f"{url.rstrip('/')}{path}", json=body, headers=headers
                )
        except httpx.HTTPError as exc:
            raise ExecutionError(
                f"endpoint {name} at {url} did not answer {path}: {type(exc).__name__}"
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code >= 400:
            detail = data.get("detail") if isinstance(data, dict) else None
            raise ExecutionError(
                f"endpoint {name} refused {path} ({response.status_code}): "
                f"{detail or response.text[:200]}"
            )
        return data if isinstance(data, dict) else {}


def _is_signoff_secret(variable: str) -> bool:
    return variable.startswith("SIGNOFF_") and any(
        word in variable for word in ("SECRET", "PASSWORD", "TOKEN")
    )


def _private_folder(folder: Path) -> None:
    """Create ``folder`` (and ``endpoints/``) owner-only; tighten one this user left open."""
    folder.parent.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the home
    for path in (folder.parent, folder):
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            path.chmod(stat.S_IMODE(info.st_mode) & ~0o077)


def _open_log(path: Path) -> BinaryIO:
    """The endpoint's log for appending, owner-only (0600); never through a symlink."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    info = os.fstat(fd)
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:  # left open by an older version
        os.fchmod(fd, stat.S_IMODE(info.st_mode) & ~0o077)
    return os.fdopen(fd, "ab")


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
    """``sig`` once to the endpoint's process group and to each descendant that left it."""
    try:
        leader = psutil.Process(pid)
        family = [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    # Endpoints lead their own session (start_new_session), so pgid == pid.
    try:
        os.killpg(pid, sig)
        grouped = True
    except ProcessLookupError:  # not a group leader: each process on its own
        grouped = False
    for proc in family:
        with contextlib.suppress(psutil.Error, OSError):
            if not grouped or os.getpgid(proc.pid) != pid:
                proc.send_signal(sig)


def _proc_is_running(proc: psutil.Process, *, endpoint_only: bool) -> bool:
    """Alive, not a zombie, ours to signal, and (``endpoint_only``) an endpoint's command line."""
    try:
        with proc.oneshot():
            if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return False
            if endpoint_only and not any("signoff.serving" in arg for arg in proc.cmdline()):
                return False
        proc.send_signal(0)  # a signal we may not send: someone else's, not one we started
    except psutil.Error:  # gone, a zombie, or someone else's
        return False
    return True


def _cmdline(pid: int) -> str:
    """The process's arguments, each followed by NUL (empty where it cannot be read)."""
    try:
        return "".join(f"{arg}\0" for arg in psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


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
