"""The CLI against a signoff server: ``SIGNOFF_SERVER_URL`` and ``SIGNOFF_TOKEN`` set.

``runs``, ``show``, ``logs``, ``gates``, ``approve`` and ``reject`` then ask the server's REST
API (``/api/v1``) over HTTP instead of opening the store. The answers are parsed into the read
models of :mod:`signoff.views` (the ones local mode builds), so both modes print the same.
Decisions are made as the token's user. HTTP errors become one-line reasons (a
``SignoffError``), like local ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError
from rich.console import Console

from signoff.bootstrap import Settings
from signoff.cli.auth import Credentials
from signoff.domain.states import RunState
from signoff.errors import ConflictError, NotATargetError, NotFoundError, SignoffError
from signoff.views.models import DecisionOut, GateRow, PrincipalOut, RunDetail, RunRow

__all__ = [
    "RemoteClient",
    "connect",
    "decide_and_wait",
    "follow",
]

_POLL = 0.5
_PATIENCE = 120.0  # seconds without any change before a decision stops waiting for the run
_SETTLED = {s for s in RunState if s.is_terminal} | {RunState.WAITING_FOR_APPROVAL}
_WAITING = RunState.WAITING_FOR_APPROVAL.value


class RemoteClient:
    """Calls to one signoff server's REST API with a Bearer token."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ transport
    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise SignoffError(f"cannot reach the signoff server at {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise _error(self.url, response)
        return response

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = self._send(method, path, **kw)
        try:
            return response.json()
        except ValueError:
            raise SignoffError(
                f"{self.url} did not answer like a signoff server (no JSON at {path})"
            ) from None

    def _parsed(self, model: Any, method: str, path: str, **kw: Any) -> Any:
        """The answer as a read model (``model``: a class or a ``list[...]`` of one)."""
        data = self._json(method, path, **kw)
        try:
            return TypeAdapter(model).validate_python(data)
        except ValidationError:
            raise SignoffError(
                f"{self.url} answered {path} with a document this signoff does not read"
            ) from None

    # ---------------------------------------------------------------- resources
    def me(self) -> PrincipalOut:
        """Who the token acts as."""
        found: PrincipalOut = self._parsed(PrincipalOut, "GET", "/users/me")
        return found

    def runs(self, limit: int) -> list[RunRow]:
        """Runs, newest first (``runs --json``)."""
        rows: list[RunRow] = self._parsed(list[RunRow], "GET", "/runs", params={"limit": limit})
        return rows

    def run_detail(self, run_id: str) -> RunDetail:
        """A run as ``show --json`` prints it."""
        detail: RunDetail = self._parsed(RunDetail, "GET", f"/runs/{_part(run_id)}")
        return detail

    def open_gates(self) -> list[GateRow]:
        """Gates waiting for a decision (``gates --json``; the API's ``required`` is dropped)."""
        rows: list[GateRow] = self._parsed(list[GateRow], "GET", "/gates")
        return rows

    def task_log(self, run_id: str, label: str) -> tuple[str, bool]:
        """A task run's output (its last 4 MiB) and whether it was cut."""
        response = self._send(
            "GET",
            f"/runs/{_part(run_id)}/tasks/{_part(label)}/logs",
            params={"tail": 4 * 1024 * 1024},
        )
        return response.text, response.headers.get("x-log-truncated") == "true"

    def decide(self, run_id: str, *, approve: bool, comment: str | None) -> DecisionOut:
        """Approve or reject the run's open gate as the token's user."""
        body = {"decision": "approve" if approve else "reject", "comment": comment}
        path = f"/runs/{_part(run_id)}/decisions"
        result: DecisionOut = self._parsed(DecisionOut, "POST", path, json=body)
        return result


def _part(value: str) -> str:
    """One path segment, escaped (a task label like ``train[1]`` stays one segment)."""
    return quote(value, safe="")


def _error(url: str, response: httpx.Response) -> SignoffError:
    try:
        detail = str(response.json().get("detail") or response.reason_phrase)
    except (ValueError, AttributeError):
        detail = response.reason_phrase or f"HTTP {response.status_code}"
    status = response.status_code
    if status == 401:
        return SignoffError(f"the server at {url} refused the token (SIGNOFF_TOKEN): {detail}")
    if status == 403:
        return NotATargetError(detail)
    if status == 404:
        return NotFoundError(detail)
    if status == 409:
        return ConflictError(detail)
    return SignoffError(detail)


@contextmanager
def connect(settings: Settings) -> Iterator[RemoteClient]:
    """A client for the configured server; refuses a URL without a token or a scheme."""
    url = settings.server_url or ""
    if not url.startswith(("http://", "https://")):
        raise SignoffError(f"SIGNOFF_SERVER_URL must start with http:// or https://, got {url!r}")
    token = settings.token.get_secret_value().strip() if settings.token else ""
    if not token:
        saved = Credentials(settings.resolved_credentials_file).get(url.rstrip("/"))
        token = str(saved["token"]) if saved else ""
    if not token:
        raise SignoffError(
            "SIGNOFF_SERVER_URL is set but you are not signed in to it: run `signoff login "
            "NAME`, or set SIGNOFF_TOKEN (a token from `signoff users token NAME`)"
        )
    client = RemoteClient(url, token)
    try:
        yield client
    finally:
        client.close()


def follow(
    client: RemoteClient,
    run_id: str,
    console: Console | None,
    *,
    seen: dict[str, str] | None = None,
    until: Callable[[RunDetail], bool] | None = None,
    patience: float | None = None,
) -> RunDetail:
    """Print task and run state changes until ``until`` holds (default: the run ends or
    waits at a gate); with ``patience``, give up after that many seconds without a change."""
    done = until or (lambda d: d.state in _SETTLED)
    states = dict(seen or {})
    last_run_state = ""
    last_change = time.monotonic()
    while True:
        detail = client.run_detail(run_id)
        for task in detail.tasks:
            if states.get(task.task_run_id) != task.state:
                states[task.task_run_id] = task.state
                last_change = time.monotonic()
                note = f" ({task.reason})" if task.reason else ""
                if console is not None:
                    console.print(
                        f"{task.label:<24} {task.state}{note}", markup=False, highlight=False
                    )
        if detail.state.value != last_run_state:
            last_run_state = detail.state.value
            last_change = time.monotonic()
            if console is not None:
                console.print(f"run {detail.run_id} {detail.state.value}", markup=False)
        if done(detail):
            return detail
        if patience is not None and time.monotonic() - last_change > patience:
            return detail
        time.sleep(_POLL)


def decide_and_wait(
    client: RemoteClient,
    run_id: str,
    *,
    as_user: str | None,
    approve: bool,
    comment: str | None,
    progress: Console | None,
    note: Console,
) -> tuple[DecisionOut, RunDetail]:
    """Decide the run's open gate as the token's user; when the gate closed, wait while the
    server continues the run. Returns the decision and the run's final form."""
    user = client.me().user
    if as_user is not None and as_user != user:
        raise SignoffError(
            f"--as {as_user}: with SIGNOFF_SERVER_URL set, decisions are made as the token's "
            f"user ({user}); drop --as, or use a token of {as_user}"
        )
    before = client.run_detail(run_id)
    seen = {t.task_run_id: t.state for t in before.tasks}
    result = client.decide(before.run_id, approve=approve, comment=comment)
    verb = "approved" if approve else "rejected"
    if progress is not None:
        progress.print(f"{user} {verb} run {before.run_id}: gate is now {result.gate_state}")
    if result.gate_state == _WAITING:  # the quorum wants more approvals
        return result, client.run_detail(before.run_id)

    def moved_on(detail: RunDetail) -> bool:
        if detail.state is not RunState.WAITING_FOR_APPROVAL:
            return detail.state in _SETTLED
        return any(g.state == _WAITING and g.gate_id != result.gate_id for g in detail.gates)

    final = follow(client, before.run_id, progress, seen=seen, until=moved_on, patience=_PATIENCE)
    if not moved_on(final):
        note.print(
            f"note: the decision is recorded; the server has not finished run "
            f"{final.run_id} yet (it is {final.state.value})",
            markup=False,
        )
    return result, final
