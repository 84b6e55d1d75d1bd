"""Building the e-mail (plain text and HTML alternatives) for a message."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from signoff.domain.ports import Message

__all__ = ["to_email"]


def to_email(message: Message, sender: str) -> EmailMessage:
    """An RFC 5322 message with a text part and an HTML part."""
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = sender
    mail["To"] = message.to_address or f"{message.to_user}@localhost"
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain="signoff.local")
    mail["X-Signoff-Key"] = message.key
    mail.set_content(message.text)
    mail.add_alternative(f"<!doctype html><html><body>{message.html}</body></html>", subtype="html")
    return mail
