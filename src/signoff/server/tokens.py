"""API tokens: ``so_<prefix>_<secret>``; shown once, stored as a sha256, found by prefix.

A token's scopes are bounded by its user's roles twice: when it is issued (an unknown scope,
or one the roles do not allow, is refused) and at every request (what the roles allow
today; see :mod:`signoff.domain.access`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from signoff.domain.access import checked_scopes, effective_scopes
from signoff.domain.ports import AccountStore
from signoff.errors import NotFoundError, ScopeError

__all__ = ["Principal", "issue_token", "verify_token"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as, and what its token allows."""

    user: str
    scopes: tuple[str, ...]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    store: AccountStore,
    user: str,
    *,
    scopes: Sequence[str],
    now: float,
    ttl_seconds: float | None,
) -> str:
    """Create a token for ``user``; the returned value is never stored and never shown again.

    Raises :class:`ScopeError` for an unknown scope or one beyond the user's roles.
    """
    record = store.get_user(user)
    if record is None:
        raise NotFoundError(f"no user {user!r} (add one with: signoff users add {user})")
    if not record.active:
        raise ScopeError(f"user {user} is deactivated")
    scopes = checked_scopes(scopes, record.roles, user)
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


def verify_token(store: AccountStore, token: str, *, now: float) -> Principal | None:
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
    return Principal(user=user.name, scopes=effective_scopes(row["scopes"], user.roles))
