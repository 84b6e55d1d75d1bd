"""The outbox: the e-mails written to ``<home>/outbox`` when no SMTP server is set.

Messages hold personal decision links, so each person sees only the messages addressed to
them; admins see all of them. A message's text part is shown as plain, escaped text.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from signoff.bootstrap import App
from signoff.server.auth import SignedIn
from signoff.server.deps import AppDep, SignedInDep
from signoff.server.ui.layout import PageError, PageRoute, show

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

_FILE = re.compile(r"^[A-Za-z0-9_.-]{1,200}\.eml$")
_LISTED = 300


@dataclass(frozen=True, slots=True)
class Mail:
    """One message of the outbox."""

    file: str
    to: str
    subject: str
    date: str
    text: str


def _folder(app: App) -> Path:
    return app.settings.resolved_home / "outbox"


def _read(path: Path) -> Mail | None:
    try:
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    except OSError:
        return None
    text = ""
    if isinstance(msg, EmailMessage):
        body = msg.get_body(("plain",))
        if body is not None and isinstance(body, EmailMessage):
            text = str(body.get_content())
    return Mail(
        file=path.name,
        to=str(msg["To"] or ""),
        subject=str(msg["Subject"] or ""),
        date=str(msg["Date"] or ""),
        text=text,
    )


def _addresses(who: SignedIn) -> set[str]:
    mine = {f"{who.name}@localhost".lower()}
    if who.user.email:
        mine.add(who.user.email.lower())
    return mine


def _visible(mail: Mail, who: SignedIn) -> bool:
    if who.is_admin:
        return True
    found = {a.lower() for a in re.findall(r"[^\s<>,;\"]+@[^\s<>,;\"]+", mail.to)}
    return bool(found & _addresses(who))


@router.get("/outbox")
def outbox_page(app: AppDep, who: SignedInDep) -> HTMLResponse:
    """The messages in the outbox that the signed-in user may read, newest first."""
    folder = _folder(app)
    files = sorted(folder.glob("*.eml"), reverse=True) if folder.is_dir() else []
    mails = [m for m in (_read(p) for p in files[: _LISTED * 4]) if m and _visible(m, who)]
    return show(
        "outbox.html",
        who,
        mails=mails[:_LISTED],
        folder=str(folder),
        smtp_host=app.settings.smtp_host,
    )


@router.get("/outbox/{file}")
def outbox_message(file: str, app: AppDep, who: SignedInDep) -> HTMLResponse:
    """One message: subject, recipient and its text part."""
    if not _FILE.match(file):
        raise PageError(404, "Not found", "no such message in the outbox")
    path = _folder(app) / file
    mail = _read(path) if path.is_file() else None
    if mail is None or not _visible(mail, who):
        raise PageError(404, "Not found", "no such message in the outbox")
    return show("outbox_message.html", who, mail=mail)
