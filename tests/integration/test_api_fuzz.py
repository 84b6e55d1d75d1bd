"""Fuzzing the REST API from its published OpenAPI document: no request gets a 5xx.

schemathesis reads ``/api/v1/openapi.json`` from a real server (uvicorn on 127.0.0.1, on
SQLite and on PostgreSQL, the store holding one run waiting at its gate) and generates
requests for every operation: valid ones and invalid ones (wrong types, missing fields, odd
strings), with an admin token that holds every scope, so requests reach the handlers instead
of stopping at authentication. Then the GETs again with the ids and names that exist.

Every pass runs in full: no time budget cuts one short. Each pass sends exactly ``EXAMPLES``
requests per operation it covers, and the test counts what was sent. Deterministic:
hypothesis derandomized (its seed comes from the test function), no shrinking.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import Attacks
from signoff.bootstrap import App, Settings, build_app
from signoff.domain.records import UserRecord
from signoff.domain.states import RunState
from signoff.server import create_app
from signoff.server.tokens import issue_token
from signoff.server.worker import Worker
from signoff.spec import parse_flow

CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
OURS = {"flows", "runs", "gates", "models", "endpoints", "users", "audit"}  # the API's tags
EXAMPLES = 15  # requests per operation and pass: about 850 per backend, the file in a minute
PASS_ATTACKS = {
    "valid": "generated valid requests to every API operation (no 5xx, documented answers)",
    "invalid": "generated invalid requests to every API operation (wrong types, missing fields)",
    "known ids": "generated reads and decisions on the run, gate and names that exist",
}

FLOW = """flow: fuzzed
tasks:
  - title: say
    command: python -c "print('hello')"
  - title: sign-off
    depends_on: say
    objective: human_validation
    target: alice
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    """The served app, its URL, the admin token's headers and the waiting run."""

    app: App
    url: str
    headers: dict[str, str]
    run_id: str
    gate_id: str
    label: str = "say"
    server_errors: list[str] = field(default_factory=list)
    undocumented: list[str] = field(default_factory=list)
    requests: int = 0


def _root_token(app: App) -> str:
    return issue_token(
        app.store,
        "root",
        scopes=("read", "run", "decide", "admin"),
        now=time.time(),
        ttl_seconds=3600,
    )


@pytest.fixture
def target(database_url: str, tmp_path: Path) -> Iterator[Target]:
    base = tmp_path
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = build_app(Settings(home=base / "home", database_url=database_url, base_url=url, slots=2))
    for name, roles in (("alice", ("approver",)), ("root", ("admin",))):
        app.store.add_user(UserRecord(name, None, roles, True, 0.0))
    token = _root_token(app)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(app, worker=Worker(app, tick=0.2)),
            host="127.0.0.1",
            port=port,
            log_level="critical",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    spec = parse_flow(FLOW, "flow.yaml", Path(base)).spec
    run = app.engine.start_run(spec, base_dir=None, started_by="root")
    while app.store.get_run(run.id).state is not RunState.WAITING_FOR_APPROVAL:
        assert time.monotonic() < deadline + 40, app.store.get_run(run.id)
        time.sleep(0.1)
    [gate] = app.store.gates_of_run(run.id)
    try:
        yield Target(app, url, {"Authorization": f"Bearer {token}"}, run.id, gate.id)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        app.close()


def _fuzz(
    target: Target, operation: Any, mode: GenerationMode, *, conform: bool, **fixed: Any
) -> int:
    """Send generated requests for one operation and return how many were sent; remember
    every 5xx and, with ``conform``, every answer that its documented status codes, media
    types and schemas do not allow. No shrinking: a failure is reported as generated."""
    before = target.requests
    strategy = operation.as_strategy(generation_mode=mode, **fixed)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def send(case: Any) -> None:
        headers = target.headers
        if case.path.endswith("/logout"):  # it revokes its token: give it one of its own
            headers = {"Authorization": f"Bearer {_root_token(target.app)}"}
        response = case.call(base_url=target.url, headers=headers, timeout=30)
        target.requests += 1
        where = (
            f"{response.status_code} {case.method} {case.formatted_path} "
            f"query={case.query!r} body={str(case.body)[:200]!r}: {response.text[:200]}"
        )
        if response.status_code >= 500:
            target.server_errors.append(where)
        elif conform:
            try:
                case.validate_response(response, checks=CONFORMANCE)
            except (AssertionError, BaseExceptionGroup) as exc:
                target.undocumented.append(f"{where}\n  {str(exc).splitlines()[:4]}")

    send()
    return target.requests - before


def test_no_generated_request_gets_a_server_error(target: Target, attacks: Attacks) -> None:
    schema = schemathesis.openapi.from_url(
        f"{target.url}/api/v1/openapi.json", headers=target.headers, timeout=10
    ).include(path_regex=r"^/api/v1/")
    loaded = list(schema.get_all_operations())
    operations = [result.ok() for result in loaded if isinstance(result, Ok)]
    assert len(operations) == len(loaded) >= 20  # every operation's schema is usable
    known = {
        "run_id": target.run_id,
        "gate_id": target.gate_id,
        "label": target.label,
        "name": "fuzzed",
    }
    passes: dict[str, tuple[GenerationMode, bool]] = {
        "valid": (GenerationMode.POSITIVE, False),
        "invalid": (GenerationMode.NEGATIVE, False),
        "known ids": (GenerationMode.POSITIVE, True),  # the reads again, on what exists
    }
    sent: dict[str, dict[str, int]] = {name: {} for name in passes}
    failed: dict[str, int] = {}  # answers of each pass that were a 5xx or undocumented
    for name, (mode, with_known) in passes.items():
        before = len(target.server_errors) + len(target.undocumented)
        for op in operations:
            fixed: dict[str, Any] = {}
            if with_known:  # reads, and decisions (refused: root is no approver)
                if op.method.upper() != "GET" and not op.path.endswith("/decisions"):
                    continue
                names = {p.name for p in op.path_parameters}
                if not names:
                    continue
                fixed["path_parameters"] = {k: v for k, v in known.items() if k in names}
            conform = mode is GenerationMode.POSITIVE and bool(OURS & set(op.tags or ()))
            where = f"{op.method.upper()} {op.path}"
            sent[name][where] = _fuzz(target, op, mode, conform=conform, **fixed)
        failed[name] = len(target.server_errors) + len(target.undocumented) - before
    assert not target.server_errors, "\n".join(target.server_errors[:20])
    assert not target.undocumented, "\n".join(target.undocumented[:20])
    # every pass ran in full: each operation it covers got exactly EXAMPLES requests
    assert len(sent["valid"]) == len(sent["invalid"]) == len(operations)
    with_ids = [op for op in operations if op.path_parameters and op.method.upper() == "GET"]
    assert len(sent["known ids"]) >= len(with_ids) >= 5
    for name, counts in sent.items():
        short = {where: n for where, n in counts.items() if n != EXAMPLES}
        assert not short, f"pass {name!r} sent fewer than {EXAMPLES} requests to: {short}"
    assert target.requests == EXAMPLES * sum(len(counts) for counts in sent.values())
    # the run it fuzzed around is still sound
    assert target.app.store.get_run(target.run_id).state in (
        RunState.WAITING_FOR_APPROVAL,
        RunState.CANCELLED,
    )
    for name, counts in sent.items():
        tries = sum(counts.values())
        attacks.record(PASS_ATTACKS[name], "api", tries, tries - failed[name])
