"""The outbox: with no SMTP server configured, e-mails are written to a local folder.

Each message is one ``.eml`` file (open it with any mail client); ``signoff outbox`` lists
them. This is what the demo uses, so it needs nothing installed. A message holds decision
links that act as its recipient, so the folder is 0700 and every file 0600: no other local
user may read them, whatever the umask (it can only remove bits from these modes).
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

from signoff.domain.ports import Message
from signoff.notify.mime import to_email

__all__ = ["OutboxNotifier"]

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


class OutboxNotifier:
    """Writes each message as an .eml file (0600) into a folder (0700)."""

    channel = "email"
    personal = True  # one mailbox: the approver's own decision links may go here

    def __init__(self, folder: Path, sender: str = "signoff@localhost") -> None:
        self.folder = folder
        self.sender = sender

    def send(self, message: Message) -> str:
        self._private_folder()
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", message.key)[:120]
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = self.folder / f"{stamp}-{safe}.eml"
        # the same message key within one second is the same message: it replaces the file
        fd = os.open(path, _CREATE, 0o600)
        if os.fstat(fd).st_mode & 0o077:  # replacing a file an older version left readable
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(bytes(to_email(message, self.sender)))
        return str(path)

    def _private_folder(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.folder.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            self.folder.chmod(stat.S_IMODE(info.st_mode) & ~0o077)  # left open by an older version
