"""Who the command line acts as, and how it knows: a token, a saved login, a password, or --as.

A store without users with passwords is a laptop: ``--as NAME`` is taken at its word (the
audit entry says ``asserted``). Once the store has users with passwords (a team), a
decision or an admin's change needs proof, in this order:

1. ``SIGNOFF_TOKEN`` — an API token (``signoff users token``), verified against the store;
2. a saved login — ``signoff login NAME`` checks the password once and keeps a token for
   that database (or server) in the credentials file (mode 0600, folder 0700);
3. ``--as NAME`` on a terminal — the password of NAME, asked there and then.

``--as`` may never name anyone but the proven user. The credentials file maps where (the
database URL without its password, or the server URL) to ``{user, token, expires_at}``.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from signoff.bootstrap import App, Settings
from signoff.errors import NotATargetError, SignoffError
from signoff.server.passwords import verify_password
from signoff.server.tokens import verify_token

__all__ = [
    "LOGIN_FAILURE_WINDOW",
    "Credentials",
    "Identity",
    "acting_user",
    "identify",
    "prove_password",
]

LOGIN_FAILURE_WINDOW = 15 * 60
_WHAT = {"decide": "decide", "admin": "do that: it takes the admin role", "run": "start runs"}
_MAX_FAILURES = 5


@dataclass(frozen=True, slots=True)
class Identity:
    """A user and how the CLI came to believe it (``token``, ``login``, ``password``, ...)."""

    user: str
    auth: str
    roles: tuple[str, ...] = ()


class Credentials:
    """The saved logins of this OS user: one token per database or server (file mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise SignoffError(f"{self.path} is not a credentials file: {exc}") from None
        logins = data.get("logins") if isinstance(data, dict) else None
        return logins if isinstance(logins, dict) else {}

    def _write(self, logins: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 1, "logins": logins}, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def get(self, where: str) -> dict[str, Any] | None:
        """The login saved for ``where``, if any."""
        found = self._read().get(where)
        return found if isinstance(found, dict) and isinstance(found.get("token"), str) else None

    def put(self, where: str, *, user: str, token: str, expires_at: float | None) -> None:
        """Save (or replace) the login for ``where``."""
        logins = self._read()
        logins[where] = {"user": user, "token": token, "expires_at": expires_at}
        self._write(logins)

    def remove(self, where: str) -> dict[str, Any] | None:
        """Forget the login for ``where``; what was saved, if anything."""
        logins = self._read()
        gone = logins.pop(where, None)
        if gone is not None:
            self._write(logins)
        return gone if isinstance(gone, dict) else None


def credentials(settings: Settings) -> Credentials:
    """The credentials file these settings name."""
    return Credentials(settings.resolved_credentials_file)


def identify(
    app_: App, settings: Settings, as_user: str | None, *, scope: str, interactive: bool = True
) -> Identity:
    """Who a local command acts as, proven as well as the store asks (see the module text).

    ``scope`` is what the action needs of a token (``decide``, ``admin``, ``run``).
    """
    store = app_.store
    now = app_.engine.clock.now()
    token = settings.token.get_secret_value().strip() if settings.token else ""
    source = "token"
    if not token:
        saved = credentials(settings).get(store.url)
        if saved is not None:
            token, source = str(saved["token"]), "login"
    if token:
        principal = verify_token(store, token, now=now)
        if principal is None:
            what = "SIGNOFF_TOKEN" if source == "token" else "your saved login"
            raise SignoffError(
                f"{what} is not valid for this store (unknown, expired or revoked): "
                "sign in again with `signoff login NAME`"
            )
        if scope not in principal.scopes:
            raise NotATargetError(
                f"the token of {principal.user} may not {_WHAT.get(scope, scope)} (that takes "
                f"the {scope!r} scope; its scopes: {', '.join(principal.scopes) or 'none'})"
            )
        _same_user(as_user, principal.user, source)
        user = store.get_user(principal.user)
        return Identity(principal.user, source, tuple(user.roles) if user else ())
    if not store.has_password_users():
        name = as_user or settings.user
        if not name:
            raise SignoffError("--as is needed: who decides (a target of the gate)")
        user = store.get_user(name)
        return Identity(name, "asserted", tuple(user.roles) if user else ())
    if as_user is None or not (interactive and sys.stdin.isatty()):
        raise SignoffError(
            "this store has users with passwords, so the command line must prove who you "
            "are: run `signoff login NAME` (or set SIGNOFF_TOKEN); on a terminal, "
            "--as NAME asks for NAME's password"
        )
    password = typer.prompt(f"password of {as_user}", hide_input=True)
    user = prove_password(app_, as_user, password, client=_client())
    return Identity(user.name, "password", tuple(user.roles))


def acting_user(app_: App, settings: Settings) -> Identity:
    """Who starts or cancels a run from here: the proven user if there is one, else the
    configured or login name (``asserted``). Never asks for a password."""
    token = settings.token.get_secret_value().strip() if settings.token else ""
    source = "token"
    if not token:
        saved = credentials(settings).get(app_.store.url)
        if saved is not None:
            token, source = str(saved["token"]), "login"
    if token:
        principal = verify_token(app_.store, token, now=app_.engine.clock.now())
        if principal is not None:
            return Identity(principal.user, source)
    return Identity(settings.user or getpass.getuser(), "asserted")


def prove_password(app_: App, name: str, password: str, *, client: str) -> Any:
    """The active user ``name`` if ``password`` is theirs; failures are counted and limited."""
    store = app_.store
    now = app_.engine.clock.now()
    by_user, _ = store.count_login_failures(
        user=name, client=client, since=now - LOGIN_FAILURE_WINDOW
    )
    if by_user >= _MAX_FAILURES:
        raise NotATargetError(
            f"too many failed sign-ins for {name}; wait {LOGIN_FAILURE_WINDOW // 60} minutes"
        )
    user = store.get_user(name)
    good = verify_password(store.password_hash(name) if user else None, password)
    if user is None or not user.active or not good:
        store.add_login_failure(name or "-", client, now, forget_before=now - 86400)
        raise NotATargetError("wrong name or password")
    store.clear_login_failures(name)
    return user


def _same_user(as_user: str | None, proven: str, source: str) -> None:
    if as_user is not None and as_user != proven:
        how = "SIGNOFF_TOKEN" if source == "token" else "your saved login"
        raise NotATargetError(
            f"--as {as_user}: {how} is {proven}'s, and the command line acts only as the "
            f"user it can prove; drop --as, or sign in as {as_user}"
        )


def _client() -> str:
    try:
        who = os.getlogin()
    except OSError:
        who = str(os.getuid())
    return f"cli:{who}"[:64]
