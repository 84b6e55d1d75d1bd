"""Who a browser request acts as: the signed-in user, their roles, and their forms' CSRF value.

A plain value, below both :mod:`signoff.server.auth` (which makes it from a session cookie) and
:mod:`signoff.server.ui.layout` (which frames pages for it), so neither imports the other's
side of the sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass

from signoff.domain.records import UserRecord

__all__ = ["SignedIn"]


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who a browser request acts as, and the CSRF value its forms must carry."""

    user: UserRecord
    csrf: str
    session_hash: str

    @property
    def name(self) -> str:
        return self.user.name

    def has_role(self, role: str) -> bool:
        """Whether the user holds ``role``; an admin holds every role."""
        return "admin" in self.user.roles or role in self.user.roles

    @property
    def may_edit(self) -> bool:
        """May start and cancel runs."""
        return self.has_role("editor")

    @property
    def is_admin(self) -> bool:
        return "admin" in self.user.roles
