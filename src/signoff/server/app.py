"""create_app: the FastAPI application of ``signoff server``.

Routes live in one module per concept (``links``, ``api``, ``auth`` and the web UI's pages in
``ui/``); errors map to statuses in ``errors``; the background worker runs gate timers and
drives runs. No middleware: sessions and CSRF are request dependencies (``deps``).

No answer builds a URL from the request's Host header: redirects are root-relative paths,
and links meant to leave the site (e-mails) use the configured ``base_url``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from signoff._version import __version__
from signoff.bootstrap import App
from signoff.server import api, auth, links, triggers_api
from signoff.server.errors import install_error_handlers
from signoff.server.ui import (
    audit,
    endpoints,
    flows,
    inbox,
    models,
    outbox,
    review,
    runs,
    settings,
    users,
)
from signoff.server.worker import Worker

__all__ = ["create_app"]


def create_app(app: App, *, worker: Worker | None = None) -> FastAPI:
    """The server for one wired App; ``worker`` (started with the server) is optional."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    server = FastAPI(
        title="signoff",
        version=__version__,
        description="Machine-learning pipelines with a human sign-off before production.",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
        # The framework's trailing-slash redirect builds an absolute URL from the request's
        # Host header (``/links/TOKEN/`` -> ``http://<any host>/links/TOKEN``), which hands a
        # link's token to whatever host the request named. Routes match exactly instead;
        # every redirect of ours is a root-relative path.
        redirect_slashes=False,
    )
    server.state.app = app
    server.state.worker = worker
    install_error_handlers(server)
    server.include_router(links.router)
    server.include_router(api.router)
    server.include_router(triggers_api.router)
    server.include_router(auth.router)
    for page in (inbox, review, runs, flows, models, endpoints, audit, outbox, users, settings):
        server.include_router(page.router)

    @server.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/inbox", 303)

    @server.get("/health", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return server
