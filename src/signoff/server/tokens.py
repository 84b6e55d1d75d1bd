"""API tokens: ``so_<prefix>_<secret>``; shown once, stored as a sha256, found by prefix."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from signoff.store.sql import SqlStore

__all__ = ["Principal", "issue_token", "verify_token"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as, and what its token allows."""

    user: str
    scopes: tuple[str, ...]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    store: SqlStore,
    user: str,
    *,
    scopes: Sequence[str],
    now: float,
    ttl_seconds: float | None,
) -> str:
    """Create a token for ``user``; the returned value is never stored and never shown again."""
    prefix = secrets.token_hex(4)
    token = f"so_{prefix}_{secrets.token_urlsafe(32)}"
    store.add_api_token(
        prefix=prefix,
        token_hash=_hash(token),
        user=user,
        scopes=scopes,
        created_at=now,
        expires_at=None if ttl_seconds is None else now + ttl_seconds,
    )
    return token


def verify_token(store: SqlStore, token: str, *, now: float) -> Principal | None:
    """The principal of a valid token; None for anything malformed, unknown, expired, revoked."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "so":
        return None
    row = store.api_token(parts[1])
    if row is None or not hmac.compare_digest(row["token_hash"], _hash(token)):
        return None
    if row["revoked_at"] is not None:
        return None
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return None
    user = store.get_user(row["user_name"])
    if user is None or not user.active:
        return None
    return Principal(user=user.name, scopes=tuple(row["scopes"]))
