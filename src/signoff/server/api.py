"""The REST API under /api/v1: one router per resource, every route behind a Bearer token.

Resources: flows, runs (and their task runs and logs), gates and decisions, models,
endpoints, users, audit. Scopes, body limits and path checks are in ``api_access``; response
models in ``schemas``; errors map to statuses in ``errors`` (never a 500 for bad input).
"""

from __future__ import annotations

from fastapi import APIRouter

from signoff.server import (
    api_audit,
    api_endpoints,
    api_flows,
    api_gates,
    api_login,
    api_models,
    api_runs,
    api_users,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
for _resource in (
    api_flows,
    api_runs,
    api_gates,
    api_models,
    api_endpoints,
    api_users,
    api_login,
    api_audit,
):
    router.include_router(_resource.router)
