"""build_app: settings in, a ready engine and store out.

The home folder holds e-mails with decision links, the link-signing secret, the database, run
outputs and reports: nobody but its owner may read it. ``build_app`` creates it 0700 (and
tightens one this user left open) and adds ``0o077`` to the process umask, so that whatever
this process and its tasks and endpoints create later is owner-only too; a stricter umask is
kept as it is. Files holding secrets are created 0600 explicitly as well.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from signoff.bootstrap.settings import Settings
from signoff.domain.ports import Executor, Notifier
from signoff.endpoints.local import LocalEndpointRunner
from signoff.engine import Engine, EngineObserver
from signoff.engine.engine import new_id
from signoff.executors.local import LocalExecutor, stop_leftover
from signoff.notify import OutboxNotifier, SmtpNotifier, WebhookNotifier
from signoff.review.gating import GateService
from signoff.review.links import LinkSigner
from signoff.store.sql import SqlStore, open_store

__all__ = ["App", "SystemClock", "build_app"]


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()


@dataclass
class App:
    """The wired parts one process uses."""

    settings: Settings
    store: SqlStore
    engine: Engine
    endpoints: LocalEndpointRunner
    gates: GateService
    signer: LinkSigner

    def close(self) -> None:
        self.store.close()


def build_app(settings: Settings, observer: EngineObserver | None = None) -> App:
    """Open the store (migrating it) and wire the engine with the local executor."""
    home = settings.resolved_home
    _private_home(home)
    store = open_store(settings.resolved_database_url)
    endpoints = LocalEndpointRunner(home)
    slots = settings.slots

    def make_executor() -> Executor:
        return LocalExecutor(slots=slots)

    engine = Engine(
        store=store,
        clock=SystemClock(),
        home=home,
        executor_factory=make_executor,
        endpoints=endpoints,
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
        engine=engine,
        endpoints=endpoints,
        gates=gates,
        signer=signer,
    )


def _private_home(home: Path) -> None:
    """Make ``home`` owner-only (0700) and keep what this process creates owner-only.

    A home created here gets 0700; an existing one this user owns loses its group and world
    bits. The umask gains ``0o077`` (bits are only added: a stricter umask stays).
    """
    os.umask(os.umask(0o077) | 0o077)
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
