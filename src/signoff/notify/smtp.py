"""E-mail through an SMTP server (STARTTLS or SSL, optional login), with the stdlib."""

from __future__ import annotations

import smtplib
import ssl

from signoff.domain.ports import Message
from signoff.notify.mime import to_email

__all__ = ["SmtpNotifier"]


class SmtpNotifier:
    """Sends each message over one SMTP connection (opened per message: gates are rare)."""

    channel = "email"
    personal = True  # one mailbox: the approver's own decision links may go here

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_ssl: bool = False,
        timeout: float = 20.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self._username = username
        self._password = password
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.timeout = timeout

    def send(self, message: Message) -> str:
        if message.to_address is None:
            raise ValueError(f"user {message.to_user} has no e-mail address")
        mail = to_email(message, self.sender)
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if self.use_ssl:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.starttls and not self.use_ssl:
                client.starttls(context=context)
            if self._username:
                client.login(self._username, self._password or "")
            client.send_message(mail)
        return str(mail["Message-ID"])
