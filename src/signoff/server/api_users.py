"""Users: who the token acts as; listing and adding users (admin scope and role)."""

from __future__ import annotations

from fastapi import APIRouter

from signoff.domain.records import UserRecord
from signoff.server.api_access import CONFLICT, ERRORS, TOO_LARGE, AdminDep, BoundedRoute, TokenDep
from signoff.server.deps import AppDep
from signoff.server.schemas import UserCreate
from signoff.views.inventory import user_out
from signoff.views.models import PrincipalOut, UserOut

__all__ = ["router"]

router = APIRouter(tags=["users"], route_class=BoundedRoute, responses=ERRORS)


@router.get("/users/me")
def whoami(app: AppDep, who: TokenDep) -> PrincipalOut:
    """The token's user, its scopes and the user's roles (any valid token may ask)."""
    user = app.store.get_user(who.user)
    return PrincipalOut(
        user=who.user, scopes=list(who.scopes), roles=list(user.roles) if user else []
    )


@router.get("/users")
def list_users(app: AppDep, _who: AdminDep) -> list[UserOut]:
    """Every user, by name."""
    return [user_out(u) for u in app.store.list_users()]


@router.post("/users", status_code=201, responses={**CONFLICT, **TOO_LARGE})
def add_user(body: UserCreate, app: AppDep, _who: AdminDep) -> UserOut:
    """Add a user (409 when the name is taken); tokens and passwords come from the CLI."""
    user = UserRecord(
        name=body.name,
        email=body.email,
        roles=tuple(dict.fromkeys(body.roles)),
        active=True,
        created_at=app.engine.clock.now(),
    )
    app.store.add_user(user)
    return user_out(user)
