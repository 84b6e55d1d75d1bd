"""Rendering server pages (Jinja2, autoescaped, no JavaScript build step)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from signoff.server.ui.layout import HEADERS

__all__ = ["message_page", "render"]

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
)


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page from a template, with headers that keep it from being framed or cached.

    A link's pages get the signed-in pages' headers: no script, no framing by others, forms
    to this site only.
    """
    html = _ENV.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def message_page(
    title: str, text: str, *, status: int, base: str, ok: bool = False
) -> HTMLResponse:
    """A one-message page (a decision recorded, or why a link does not work)."""
    return render(
        "message.html", status, title=title, text=text, base=base, css="ok" if ok else "bad"
    )
