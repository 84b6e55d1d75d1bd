"""The signoff server: REST API under /api/v1, decision links, and the web UI."""

from signoff.server.app import create_app

__all__ = ["create_app"]
