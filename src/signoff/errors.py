"""The one error root of signoff and its subclasses.

Every error a user can cause derives from :class:`SignoffError`; the CLI prints its message on
one line and exits non-zero, the server maps it to a 4xx status (one table, in the server).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConflictError",
    "ExecutionError",
    "GateClosedError",
    "IntegrityError",
    "InvalidTransitionError",
    "LinkUsedError",
    "NotATargetError",
    "NotFoundError",
    "ScopeError",
    "SignoffError",
    "SpecError",
    "SpecIssue",
]


class SignoffError(Exception):
    """Root of every error signoff raises on purpose."""

    exit_code: int = 1


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem found in a flow file: where it is and what is wrong."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    field: str  # dotted path, e.g. tasks[2].params[0].values
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class SpecError(SignoffError, ValueError):
    """A flow definition is invalid; carries every issue found in one pass."""

    exit_code = 2

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = [i for i in issues if i.severity == "error"]
        lines = [str(i) for i in self.issues]
        super().__init__("\n".join(lines) if lines else "invalid flow")


class NotFoundError(SignoffError, LookupError):
    """A run, task, gate, model or endpoint that was asked for does not exist."""


class ConflictError(SignoffError):
    """Someone else changed the object first (compare-and-set lost), or it is in the wrong state."""


class InvalidTransitionError(ConflictError):
    """A state change that the transition table does not allow."""


class GateClosedError(ConflictError):
    """The gate was already decided, expired or cancelled."""


class LinkUsedError(ConflictError):
    """A single-use decision link was used already (the store refused its second use)."""


class NotATargetError(SignoffError, PermissionError):
    """The user may not decide this gate."""


class ScopeError(SignoffError, PermissionError):
    """A token scope that does not exist, or that the user's roles do not allow."""


class IntegrityError(SignoffError):
    """A digest did not match: what would ship is not what was approved or stored."""


class ExecutionError(SignoffError):
    """A task could not be executed (not a failure of the task's own code)."""
