"""build_app: settings in, a ready engine and store out."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass

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
    home.mkdir(parents=True, exist_ok=True)
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


def secret_key(settings: Settings) -> bytes:
    """The configured secret, or one generated once and kept in the home folder (0600)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.resolved_home / "secret.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


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
