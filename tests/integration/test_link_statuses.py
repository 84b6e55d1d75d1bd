"""What a decision link answers when it does not work, decided by the error's type.

A genuine link that is spent (expired, or used) is 410 Gone; one that never was a link of
this server (forged, damaged, unknown, or not matching its record) is 403; a good link whose
gate was decided another way is 409. Each status is checked on the three link routes (the
page, its report, and the confirming POST), against a real store and a real gate.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from gate_flows import write_flow

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.records import GateRecord
from signoff.domain.states import TaskRunState
from signoff.server import create_app
from signoff.spec import load_flow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gated(database_url: str, tmp_path: Path) -> Iterator[tuple[App, GateRecord, httpx.Client]]:
    """A run waiting at its gate, the server on loopback (no worker), and a client of it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = build_app(Settings(home=tmp_path / "home", database_url=database_url, base_url=url))
    loaded = load_flow(write_flow(tmp_path / "flow"))
    run = app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by="carol")
    app.engine.drive(run.id)
    gate = app.store.gates_of_run(run.id)[0]
    assert app.store.get_task_run(gate.task_run_id).state is TaskRunState.WAITING_FOR_APPROVAL
    config = uvicorn.Config(
        create_app(app), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=url, trust_env=False, timeout=10) as client:
            yield app, gate, client
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        app.close()


def _mint(app: App, gate: GateRecord, *, expires_in: float, user: str = "alice") -> str:
    link = app.signer.mint(
        gate_id=gate.id,
        user=user,
        decision="approve",
        expires_at=app.engine.clock.now() + expires_in,
    )
    app.store.add_link_tokens([link.record])
    return link.token


def _answers(client: httpx.Client, token: str) -> list[tuple[int, str]]:
    """Status and text of GET, GET report and POST for one token."""
    got = [
        client.get(f"/links/{token}"),
        client.get(f"/links/{token}/report"),
        client.post(f"/links/{token}", data={"csrf": "x"}),
    ]
    return [(r.status_code, r.text) for r in got]


def _all(answers: list[tuple[int, str]], status: int, words: str) -> bool:
    return all(code == status and words in text for code, text in answers)


def _confirm(client: httpx.Client, token: str) -> int:
    page = client.get(f"/links/{token}")
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return client.post(f"/links/{token}", data={"csrf": found.group(1)}).status_code


def test_spent_links_are_gone_foreign_ones_forbidden(
    gated: tuple[App, GateRecord, httpx.Client],
) -> None:
    app, gate, client = gated
    expired = _mint(app, gate, expires_in=-60)
    alices = _mint(app, gate, expires_in=3600)
    bobs = _mint(app, gate, expires_in=3600, user="bob")
    payload, signature = alices.split(".")
    forged = f"{payload}.{signature[:-1]}{'B' if signature.endswith('A') else 'A'}"
    unknown = app.signer.mint(
        gate_id=gate.id, user="alice", decision="approve", expires_at=app.engine.clock.now() + 60
    ).token  # a genuine signature, but never stored
    assert _all(_answers(client, expired), 410, "this link has expired")
    assert _all(_answers(client, forged), 403, "signature does not match")
    assert _all(_answers(client, "garbage"), 403, "not a signoff decision link")
    assert _all(_answers(client, unknown), 403, "not known to this signoff server")
    assert app.store.list_decisions(gate.id) == []  # none of those decided anything
    assert _confirm(client, alices) == 200  # alice approves: the gate (quorum 1) closes
    assert _all(_answers(client, alices), 410, "this link was already used")
    assert _all(_answers(client, bobs), 409, "this gate is no longer open")
    assert [d.actor for d in app.store.list_decisions(gate.id)] == ["alice"]
