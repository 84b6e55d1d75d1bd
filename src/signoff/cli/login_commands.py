"""``signoff login`` and ``signoff logout``: prove who you are once, keep a token (0600)."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import httpx
import typer

from signoff.bootstrap import build_app
from signoff.cli.auth import credentials, prove_password
from signoff.cli.console import err, out, read_settings
from signoff.errors import SignoffError
from signoff.server.tokens import issue_token

__all__ = ["register"]


def register(cli: typer.Typer) -> None:
    """Add ``login`` and ``logout`` to ``cli``."""
    for command in (login, logout):
        cli.command()(command)


def _password(name: str, from_stdin: bool) -> str:
    if from_stdin:
        text = sys.stdin.readline().rstrip("\r\n")
        if not text:
            raise SignoffError("--password-stdin: no password on standard input")
        return text
    if not sys.stdin.isatty():
        raise SignoffError("no terminal to ask for the password: use --password-stdin")
    return str(typer.prompt(f"password of {name}", hide_input=True))


def login(
    name: Annotated[str, typer.Argument(help="Your user name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    days: Annotated[float, typer.Option(help="How long the login lasts.")] = 30.0,
) -> None:
    """Sign in to this store (or to SIGNOFF_SERVER_URL): the password is checked once, and a
    token for NAME is kept in the credentials file (mode 0600) for later commands."""
    if not 0 < days <= 365:
        raise SignoffError("--days must be between 0 and 365")
    settings = read_settings()
    secret = _password(name, password_stdin)
    saved = credentials(settings)
    if settings.server_url:
        where = settings.server_url.rstrip("/")
        answer = _remote_login(where, name, secret, days)
        saved.put(
            where,
            user=str(answer["user"]),
            token=str(answer["token"]),
            expires_at=float(answer["expires_at"]),
        )
        scopes = [str(s) for s in answer.get("scopes", [])]
    else:
        app_ = build_app(settings)
        try:
            user = prove_password(app_, name, secret, client="cli-login")
            now = time.time()
            ttl = days * 86400
            token = issue_token(app_.store, user.name, scopes=["*"], now=now, ttl_seconds=ttl)
            where = app_.store.url
            saved.put(where, user=user.name, token=token, expires_at=now + ttl)
            scopes = ["*"]
        finally:
            app_.close()
    out.print(f"signed in as {name} to {where} for {days:g} days", markup=False)
    err.print(f"token kept in {saved.path} (scopes: {', '.join(scopes)})", markup=False)


def _remote_login(url: str, name: str, password: str, days: float) -> dict[str, Any]:
    try:
        with httpx.Client(timeout=30, trust_env=False) as client:
            response = client.post(
                f"{url}/api/v1/login", json={"name": name, "password": password, "days": days}
            )
    except httpx.HTTPError as exc:
        raise SignoffError(f"cannot reach the signoff server at {url}: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict) or "token" not in body:
        detail = body.get("detail") if isinstance(body, dict) else None
        raise SignoffError(f"sign-in refused by {url} ({response.status_code}): {detail}")
    return body


def logout() -> None:
    """Forget the saved login for this store (or server) and revoke its token."""
    settings = read_settings()
    saved = credentials(settings)
    if settings.server_url:
        where = settings.server_url.rstrip("/")
        gone = saved.remove(where)
        if gone is not None:
            try:
                with httpx.Client(timeout=30, trust_env=False) as client:
                    client.post(
                        f"{where}/api/v1/logout",
                        headers={"Authorization": f"Bearer {gone['token']}"},
                    )
            except httpx.HTTPError as exc:
                err.print(f"note: the server did not answer ({exc}); the token stays valid")
    else:
        app_ = build_app(settings)
        try:
            where = app_.store.url
            gone = saved.remove(where)
            if gone is not None:
                prefix = str(gone["token"]).split("_")[1]
                app_.store.revoke_api_token(prefix, time.time())
        finally:
            app_.close()
    if gone is None:
        out.print(f"not signed in to {where}", markup=False)
    else:
        out.print(f"signed out of {where} ({gone['user']})", markup=False)
