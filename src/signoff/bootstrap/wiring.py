"""build_app: settings in, a ready engine and store out.

The home folder holds e-mails with decision links, the link-signing and audit keys, the
database, run outputs and reports: nobody but its owner may enter it. ``build_app`` creates it
0700 (and tightens one this user left open), so nothing below it is reachable by another
local user whatever its own mode. Files holding secrets or personal data are created 0600
explicitly as well, in case a home is ever shared by mistake. The process umask is left
alone: a task that writes outside the home (a shared data folder) keeps the user's umask.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from signoff import failpoints
from signoff.artifacts import open_artifact_store
from signoff.bootstrap.settings import Settings
from signoff.domain.ports import Executor, Notifier, Store
from signoff.endpoints.local import LocalEndpointRunner
from signoff.engine import Engine, EngineObserver
from signoff.engine.engine import new_id
from signoff.errors import ExecutionError
from signoff.executors.admission import ResourcePool
from signoff.executors.gpus import discover_gpus
from signoff.executors.local import LocalExecutor, machine_pool, stop_leftover
from signoff.executors.routing import RoutingExecutor
from signoff.gates.audit import AuditReport, verify_audit
from signoff.gates.gating import GateService
from signoff.gates.links import LinkSigner
from signoff.notify import OutboxNotifier, SmtpNotifier, WebhookNotifier
from signoff.store.anchor import FileAnchor, UrlAnchor, checkpoint_file
from signoff.store.sql import open_store

__all__ = ["App", "SystemClock", "build_app"]


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class App:
    """The wired parts one process uses.

    ``store`` is the store port; ``database`` is the SQLAlchemy engine under it, for the
    few callers that must reach the database itself (schema checks, crash tests).
    """

    settings: Settings
    store: Store
    database: sa.Engine
    engine: Engine
    endpoints: LocalEndpointRunner
    gates: GateService
    signer: LinkSigner
    audit_key: bytes
    checkpoints: FileAnchor

    def close(self) -> None:
        self.store.close()

    def verify_audit(self, checkpoints_file: Path | None = None) -> AuditReport:
        """Check the audit log, its checkpoints (this home's, or a given file) and decisions."""
        anchor = FileAnchor(checkpoints_file) if checkpoints_file else self.checkpoints
        found, unreadable = anchor.read()
        return verify_audit(self.store, self.audit_key, found, unreadable_checkpoints=unreadable)


def build_app(settings: Settings, observer: EngineObserver | None = None) -> App:
    """Open the store (migrating it) and wire the engine with the local executor."""
    home = settings.resolved_home
    _private_home(home)
    if settings.failpoints:
        failpoints.arm(settings.failpoints.split(","), home / "failpoints")
    store = open_store(settings.resolved_database_url)
    key = audit_key(settings)
    checkpoints = FileAnchor(checkpoint_file(home / "audit", store.url))
    anchors: list[FileAnchor | UrlAnchor] = [checkpoints]
    if settings.audit_anchor_url:
        anchors.append(UrlAnchor(settings.audit_anchor_url))
    store.configure_audit(key, anchors)
    endpoints = LocalEndpointRunner(home)
    slots, gpus = settings.slots, settings.gpus

    machine: list[ResourcePool] = []  # one per process, shared by every run it drives
    machine_lock = threading.Lock()

    def make_local() -> Executor:
        with machine_lock:
            if not machine:  # GPUs found once (nvidia-smi), not per run
                machine.append(machine_pool(slots, discover_gpus(gpus)))
        return LocalExecutor(pool=machine[0])

    def make_ray() -> Executor:
        from signoff.executors.ray import RayExecutor, ray_missing

        if (missing := ray_missing()) is not None:
            raise ExecutionError(missing)
        return RayExecutor(
            settings.ray_address,
            settings.resolved_artifacts_url,
            settings.ray_placement_timeout,
            open_store=open_artifact_store,
        )

    factories: dict[str, Callable[[], Executor]] = {"local": make_local, "ray": make_ray}

    def make_executor() -> Executor:
        return RoutingExecutor(settings.executor, factories)

    engine = Engine(
        store=store,
        clock=SystemClock(),
        home=home,
        executor_factory=make_executor,
        endpoints=endpoints,
        artifacts=open_artifact_store(settings.resolved_artifacts_url),
        lease_seconds=settings.lease_seconds,
        stop_leftover=stop_leftover,
    )
    if observer is not None:
        engine.observer = observer
    signer = LinkSigner(secret_key(settings), settings.base_url)
    gates = GateService(
        store=store,
        clock=engine.clock,
        signer=signer,
        new_id=new_id,
        notifiers=tuple(notifiers(settings)),
    )
    engine.after_gate_opened = gates.after_open
    return App(
        settings=settings,
        store=store,
        database=store.engine,
        engine=engine,
        endpoints=endpoints,
        gates=gates,
        signer=signer,
        audit_key=key,
        checkpoints=checkpoints,
    )


def _private_home(home: Path) -> None:
    """Make ``home`` owner-only (0700): created so, or tightened if this user owns it."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(home)


def secret_key(settings: Settings) -> bytes:
    """The configured secret, or one generated once and kept in the home folder (0600)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.resolved_home / "secret.key"
    if not path.exists():
        # written whole under a temporary name, then linked: a concurrent start never reads
        # a half-written key, and the first one to link wins
        temp = path.with_name(f".secret.key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        finally:
            temp.unlink(missing_ok=True)
    _tighten(path)  # a key file an older version left readable
    return path.read_text().strip().encode()


def audit_key(settings: Settings) -> bytes:
    """The configured audit key, or one generated once in the home folder (0600).

    It lives outside the database on purpose: whoever can only edit the database cannot
    write an audit entry that verifies.
    """
    if settings.audit_key is not None:
        return settings.audit_key.get_secret_value().encode()
    path = settings.resolved_home / "audit.key"
    if not path.exists():
        # Written whole under another name, then linked into place: two processes starting
        # together agree on one key, and nobody ever reads a half-written one.
        tmp = path.with_name(f".audit.key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


def _tighten(path: Path) -> None:
    """Remove group and world bits from ``path`` if this user owns it (others' files stay)."""
    info = path.stat()
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        path.chmod(stat.S_IMODE(info.st_mode) & ~0o077)


def notifiers(settings: Settings) -> list[Notifier]:
    """SMTP when a host is set, else the outbox folder; plus a webhook when set."""
    found: list[Notifier] = []
    if settings.smtp_host:
        found.append(
            SmtpNotifier(
                settings.smtp_host,
                settings.smtp_port,
                sender=settings.mail_from,
                username=settings.smtp_user,
                password=settings.smtp_password.get_secret_value()
                if settings.smtp_password
                else None,
                starttls=settings.smtp_starttls,
                use_ssl=settings.smtp_ssl,
            )
        )
    else:
        found.append(OutboxNotifier(settings.resolved_home / "outbox", settings.mail_from))
    if settings.webhook_url:
        found.append(WebhookNotifier(settings.webhook_url))
    return found
