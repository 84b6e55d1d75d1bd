"""Settings (admins only): how this server is configured, without any secret's value."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from signoff.server import auth
from signoff.server.deps import AdminDep, AppDep
from signoff.server.ui.layout import PageRoute, show

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/settings")
def settings_page(app: AppDep, who: AdminDep) -> HTMLResponse:
    """The settings in effect (environment ``SIGNOFF_*``); secrets only say whether they are set."""
    s = app.settings
    webhook = urlsplit(s.webhook_url).hostname if s.webhook_url else None
    rows = [
        ("base URL (links, cookies)", s.base_url),
        ("home folder", str(s.resolved_home)),
        ("database", app.store.url),
        ("secret key", "set in SIGNOFF_SECRET_KEY" if s.secret_key else "<home>/secret.key"),
        (
            "SMTP",
            f"{s.smtp_host}:{s.smtp_port}" if s.smtp_host else "none: mail goes to the outbox",
        ),
        ("SMTP user", s.smtp_user or "—"),
        ("SMTP password", "set" if s.smtp_password else "—"),
        ("mail from", s.mail_from),
        ("webhook", f"posts to {webhook}" if webhook else "—"),
        ("session idle limit", f"{auth.IDLE_SECONDS // 3600} h"),
        ("session lifetime", f"{auth.MAX_SECONDS // 86400} d"),
        (
            "failed sign-ins allowed",
            f"{auth.MAX_FAILURES_PER_USER} per user, {auth.MAX_FAILURES_PER_CLIENT} per address, "
            f"per {auth.FAILURE_WINDOW // 60} min",
        ),
    ]
    return show("settings.html", who, rows=rows)
