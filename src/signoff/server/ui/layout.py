"""How every web page is framed: rendering with the navigation, and errors shown as pages.

Routes of the web UI use :class:`PageRoute`: whatever a page raises (a missing gate, a bad
query value, a refused decision, no sign-in) is answered with an HTML page carrying the
reason and a 4xx status, never a 500 and never JSON. Statuses come from
:func:`signoff.server.errors.status_of`, or from a :class:`PageError` that names its own.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from signoff.errors import SignoffError
from signoff.server.errors import status_of
from signoff.server.identity import SignedIn

__all__ = [
    "HEADERS",
    "NAV",
    "REPORT_HEADERS",
    "PageError",
    "PageRoute",
    "ago",
    "error_page",
    "is_id",
    "printable",
    "safe_next",
    "show",
    "when",
]

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parents[1] / "templates"),
    autoescape=select_autoescape(default=True),
)

# Pages may frame only the report route (its own CSP); no script runs anywhere.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# The recorded review report, framed by the review page and by a link's page: its own
# origin only may frame it, and ``sandbox`` makes the browser treat it as a foreign origin
# that runs nothing, even if it is opened outside its frame. The frames carry ``sandbox`` too.
REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# (path, label, who may see it: "" everyone signed in, else a role check in auth)
NAV = (
    ("/inbox", "Approvals", ""),
    ("/runs", "Runs", ""),
    ("/flows", "Flows", ""),
    ("/models", "Models", ""),
    ("/endpoints", "Endpoints", ""),
    ("/audit", "Audit", ""),
    ("/outbox", "Outbox", ""),
    ("/users", "Users", "admin"),
    ("/settings", "Settings", "admin"),
)

# Which navigation entry a page belongs to (highlighted in the header).
_SECTION = {
    "inbox": "/inbox",
    "review": "/inbox",
    "runs": "/runs",
    "run": "/runs",
    "flows": "/flows",
    "models": "/models",
    "model": "/models",
    "endpoints": "/endpoints",
    "endpoint": "/endpoints",
    "audit": "/audit",
    "outbox": "/outbox",
    "outbox_message": "/outbox",
    "users": "/users",
    "settings": "/settings",
}


class PageError(SignoffError):
    """A page's answer when it cannot show what was asked: a status, a title and the reason.

    ``login`` marks a missing or expired sign-in: a GET is sent to the login page (and back
    afterwards), anything else gets 401.
    """

    def __init__(self, status: int, title: str, reason: str, *, login: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.title = title
        self.reason = reason
        self.login = login


_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def is_id(value: str) -> bool:
    """Whether ``value`` can be a run or gate id (what else reaches the store is refused)."""
    return bool(_ID.match(value))


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` without control characters (NUL cannot be stored); ``lines`` keeps newlines."""
    keep = "\n\t" if lines else ""
    return "".join(ch for ch in text if ch.isprintable() or ch in keep)


def when(ts: float | None) -> str:
    """A timestamp as UTC, to the minute."""
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(seconds: float | None) -> str:
    """A duration, short and human: 42 s, 7 min, 3.5 h, 2.0 d."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


_ENV.filters["when"] = when
_ENV.filters["ago"] = ago


def show(
    template: str,
    who: SignedIn | None,
    *,
    status: int = 200,
    refresh: int | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page from a template, framed with the navigation for ``who``."""
    nav = []
    if who is not None:
        nav = [(path, label) for path, label, role in NAV if not role or who.has_role(role)]
    html = _ENV.get_template(template).render(base="", who=who, nav=nav, refresh=refresh, **context)
    return HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})


def error_page(
    request: Request, status: int, title: str, reason: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """A page that says what went wrong (with the navigation when someone is signed in)."""
    who: SignedIn | None = getattr(request.state, "signed_in", None)
    return show(
        "message.html",
        who,
        status=status,
        headers=headers,
        title=title,
        text=reason,
        css="bad",
    )


def safe_next(target: str | None, default: str = "/inbox") -> str:
    """A local path to go back to after signing in; anything else (other sites) is dropped."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return default
    return target


def _reason(error: Any) -> str:
    where = [str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body")]
    return f"{'.'.join(where) or 'request'}: {error.get('msg', 'invalid')}"


def _login_redirect(request: Request) -> Response:
    if request.method in ("GET", "HEAD"):
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(safe_next(back), safe='')}", 303)
    return error_page(request, 401, "Sign in first", "Your session ended; sign in again.")


class PageRoute(APIRoute):
    """A route whose failures are pages with a reason and a 4xx status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except PageError as exc:
                if exc.login:
                    return _login_redirect(request)
                return error_page(request, exc.status, exc.title, exc.reason)
            except RequestValidationError as exc:
                reasons = "; ".join(_reason(e) for e in exc.errors())
                return error_page(request, 422, "Bad request", reasons or "invalid request")
            except StarletteHTTPException as exc:
                return error_page(request, exc.status_code, "Not possible", str(exc.detail))
            except SignoffError as exc:
                status = status_of(exc)
                title = {404: "Not found", 403: "Not allowed", 409: "Conflict"}.get(
                    status, "Not possible"
                )
                return error_page(request, status, title, str(exc))

        return answer
