"""Reading a flow file from disk: at most :data:`MAX_FLOW_BYTES`, UTF-8, errors as issues.

A flow file is a few kilobytes; a huge one is a mistake (a data file passed by accident) or an
attack on whoever validates it (a server, a scheduler). The cap is checked while reading, so
a 20 GiB file costs one read of ``MAX_FLOW_BYTES + 1`` bytes, never the whole file.
"""

from __future__ import annotations

from pathlib import Path

from signoff.errors import SpecError, SpecIssue

__all__ = ["MAX_FLOW_BYTES", "check_flow_size", "read_flow_text"]

MAX_FLOW_BYTES = 1 << 20
"""The largest flow file (and flow text) accepted: 1 MiB, the API's body limit too."""


def read_flow_text(path: Path, name: str) -> str:
    """The text of the flow file at ``path`` (``name`` names it in issues); raises SpecError."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FLOW_BYTES + 1)
    except FileNotFoundError:
        raise SpecError([file_issue(name, "flow file not found")]) from None
    except IsADirectoryError:
        raise SpecError([file_issue(name, "is a folder, not a flow file")]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SpecError([file_issue(name, f"cannot read flow file: {reason}")]) from None
    if len(data) > MAX_FLOW_BYTES:
        raise SpecError([file_issue(name, _too_large("flow file"))])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        issue = SpecIssue(name, line, column, "", "flow file is not UTF-8 text")
        raise SpecError([issue]) from None


def check_flow_size(text: str, name: str) -> None:
    """Refuse flow text longer than :data:`MAX_FLOW_BYTES` once encoded as UTF-8."""
    # a character is 1 to 4 bytes: only text in between needs encoding to know its size
    if len(text) > MAX_FLOW_BYTES or (
        len(text) * 4 > MAX_FLOW_BYTES
        and len(text.encode("utf-8", "surrogatepass")) > MAX_FLOW_BYTES
    ):
        raise SpecError([file_issue(name, _too_large("flow text"))])


def file_issue(filename: str, message: str) -> SpecIssue:
    """An issue about the whole file, positioned at its start."""
    return SpecIssue(file=filename, line=1, column=1, field="", message=message)


def _too_large(what: str) -> str:
    return f"{what} is larger than {MAX_FLOW_BYTES} bytes (1 MiB), the limit for a flow"
