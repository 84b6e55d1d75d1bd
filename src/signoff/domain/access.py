"""Roles and what each may do through a token: the scopes a role bounds (pure).

A token carries scopes; a user holds roles. A token may only be issued with scopes its
user's roles allow, and every request is checked again against the roles the user holds
*then* (a user moved from editor to viewer loses ``run`` at once, whatever their tokens say).

Deciding a gate is not a role: the gate's policy (its targets) decides who may, at decision
time, so ``decide`` is allowed to every role and refused, by the gate, to non-targets.
"""

from __future__ import annotations

from collections.abc import Iterable

from signoff.errors import ScopeError

# ScopeError lives in signoff.errors (one error root); it is raised here.

__all__ = [
    "ALL_SCOPES",
    "ROLES",
    "ROLE_SCOPES",
    "SCOPES",
    "allowed_scopes",
    "checked_scopes",
    "effective_scopes",
]

ROLES = ("admin", "editor", "approver", "viewer")
"""``admin``: users and settings, and everything else; ``editor``: start and cancel runs;
``approver`` and ``viewer``: read (and decide the gates that name them)."""

SCOPES = ("read", "run", "decide", "admin")
"""``read`` for GETs, ``run`` to start and cancel runs, ``decide`` for decisions, ``admin``
for users."""

ALL_SCOPES = "*"
"""In a token: every scope its user's roles allow (never more)."""

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "editor": frozenset({"read", "run", "decide"}),
    "approver": frozenset({"read", "decide"}),
    "viewer": frozenset({"read", "decide"}),
}


def allowed_scopes(roles: Iterable[str]) -> frozenset[str]:
    """Every scope the roles allow together (an unknown role allows nothing)."""
    allowed: frozenset[str] = frozenset()
    for role in roles:
        allowed |= ROLE_SCOPES.get(role, frozenset())
    return allowed


def checked_scopes(requested: Iterable[str], roles: Iterable[str], user: str) -> tuple[str, ...]:
    """The requested scopes, if each exists and the roles allow it; else a clear refusal."""
    wanted = tuple(dict.fromkeys(s.strip() for s in requested if s.strip()))
    if not wanted:
        raise ScopeError("a token needs at least one scope: " + ", ".join(SCOPES))
    unknown = [s for s in wanted if s not in (*SCOPES, ALL_SCOPES)]
    if unknown:
        raise ScopeError(
            f"unknown scope(s) {', '.join(unknown)}; scopes are {', '.join(SCOPES)} "
            f"(or {ALL_SCOPES} for all the user's roles allow)"
        )
    roles = tuple(roles)
    allowed = allowed_scopes(roles)
    beyond = [s for s in wanted if s != ALL_SCOPES and s not in allowed]
    if beyond:
        held = ", ".join(roles) or "no role"
        raise ScopeError(
            f"{user} ({held}) may not hold a token with scope(s) {', '.join(beyond)}; "
            f"allowed: {', '.join(s for s in SCOPES if s in allowed) or 'none'}"
        )
    return wanted


def effective_scopes(token_scopes: Iterable[str], roles: Iterable[str]) -> tuple[str, ...]:
    """What a token may do now: its scopes, cut down to what the user's roles allow today."""
    allowed = allowed_scopes(roles)
    scopes = tuple(token_scopes)
    if ALL_SCOPES in scopes:
        return tuple(s for s in SCOPES if s in allowed)
    return tuple(s for s in scopes if s in allowed)
