"""What the REST API reads (request bodies) and its error bodies: pydantic models.

The answers are the read models of :mod:`signoff.views` (the same documents the CLI's
``--json`` prints); only what is the server's own lives here: request bodies, the error
bodies, and the token a sign-in returns.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from signoff.views.models import SpecIssueOut

__all__ = [
    "DecisionIn",
    "ErrorOut",
    "LoginIn",
    "LoginOut",
    "Role",
    "RunCancel",
    "RunCreate",
    "SpecProblem",
    "UserCreate",
]

Role = Literal["admin", "editor", "approver", "viewer"]
"""The roles a user may hold (the same four ``signoff users add --role`` accepts)."""

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
# no NUL characters anywhere a value is stored: PostgreSQL text cannot hold them
ParamKey = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
ParamIn = (
    bool
    | int
    | FiniteFloat
    | Annotated[str, StringConstraints(max_length=10_000, pattern=r"^[^\x00]*$")]
)
Comment = Annotated[str, StringConstraints(max_length=4000, pattern=r"^[^\x00]*$")]


class ErrorOut(BaseModel):
    """Every error: a status code and one reason."""

    detail: str


class SpecProblem(BaseModel):
    """A flow that does not validate (422): the reason and every issue found in one pass."""

    detail: str
    issues: list[SpecIssueOut] = Field(
        default_factory=list, description="empty when the request itself was malformed"
    )


class RunCreate(BaseModel):
    """Start a run: a flow file's text, or the name of a flow to run again.

    ``{flow: NAME}`` re-runs the latest stored version of the flow with the code snapshot of
    its latest run. ``base_dir`` is a folder on the server whose files the run snapshots
    (commands run beside them); without it a run from ``flow_yaml`` has no code folder.
    """

    model_config = ConfigDict(extra="forbid")

    flow_yaml: str | None = Field(default=None, max_length=1_000_000)
    flow: str | None = Field(default=None, min_length=1, max_length=200)
    params: dict[ParamKey, ParamIn] = Field(default_factory=dict, max_length=200)
    base_dir: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _one_source(self) -> RunCreate:
        if (self.flow_yaml is None) == (self.flow is None):
            raise ValueError(
                "give exactly one of flow_yaml (the flow file's text) or flow (a name)"
            )
        if self.flow is not None and self.base_dir is not None:
            raise ValueError("base_dir goes with flow_yaml; a re-run uses its flow's snapshot")
        return self


class RunCancel(BaseModel):
    """Why a run is cancelled (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: Comment | None = None


class DecisionIn(BaseModel):
    """A decision on a gate."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    comment: Comment | None = None


class UserCreate(BaseModel):
    """A new user (passwords for the web UI are set from the command line)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    ]
    email: (
        Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")]
        | None
    ) = None
    roles: list[Role] = Field(default=["approver"], min_length=1, max_length=4)


class LoginIn(BaseModel):
    """A name and password exchanged for a token (``signoff login`` against a server)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)
    scopes: list[Annotated[str, Field(max_length=20)]] | None = Field(
        default=None, max_length=10, description="default: all the user's roles allow"
    )
    days: float = Field(default=30.0, gt=0, le=365, description="the token's lifetime")


class LoginOut(BaseModel):
    """A new token (shown once) and what it allows."""

    user: str
    token: str
    scopes: list[str]
    expires_at: float
