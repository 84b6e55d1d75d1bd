"""The outbox: with no SMTP server configured, e-mails are written to a local folder.

Each message is one ``.eml`` file (open it with any mail client); ``signoff outbox`` lists
them. This is what the demo uses, so it needs nothing installed.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from signoff.domain.ports import Message
from signoff.notify.mime import to_email

__all__ = ["OutboxNotifier"]


class OutboxNotifier:
    """Writes each message as an .eml file into a folder."""

    channel = "email"
    personal = True  # one mailbox: the approver's own decision links may go here

    def __init__(self, folder: Path, sender: str = "signoff@localhost") -> None:
        self.folder = folder
        self.sender = sender

    def send(self, message: Message) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", message.key)[:120]
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = self.folder / f"{stamp}-{safe}.eml"
        path.write_bytes(bytes(to_email(message, self.sender)))
        return str(path)
