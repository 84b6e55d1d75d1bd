"""Every page of the web UI against the real server, after a run went through its gate.

One server (uvicorn on 127.0.0.1, SQLite, the outbox for mail) serves the whole module: a
run approved in the web UI and deployed, and a second run waiting at its gate. Each page
renders for an admin; admin pages refuse a viewer; junk ids and parameters get a 4xx with a
reason, never a 500.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from gate_flows import write_flow

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.records import UserRecord
from signoff.domain.states import RunState
from signoff.server import create_app
from signoff.server.passwords import hash_password
from signoff.server.worker import Worker
from signoff.spec import load_flow

USERS = {"root": "admin", "ed": "editor", "alice": "approver", "vic": "viewer"}
PASSWORD = "a-long-test-password"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
COMMENT = "<script>alert('x')</script> fine"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Site:
    """The running server and what the module's fixture made on it."""

    def __init__(self, app: App, url: str, done: str, waiting: str) -> None:
        self.app = app
        self.url = url
        self.done = done  # a run approved in the web UI and deployed
        self.waiting = waiting  # a run waiting at its gate

    @contextmanager
    def client(self, user: str) -> Iterator[httpx.Client]:
        """An HTTP client signed in as ``user``."""
        with httpx.Client(base_url=self.url, trust_env=False, timeout=15) as client:
            page = client.get("/login")
            match = CSRF.search(page.text)
            assert match is not None
            answer = client.post(
                "/login", data={"name": user, "password": PASSWORD, "csrf": match.group(1)}
            )
            assert answer.status_code == 303, answer.text
            yield client

    def gate_of(self, run_id: str) -> str:
        return self.app.store.gates_of_run(run_id)[0].id


def _start(app: App, folder: Path, name: str) -> str:
    loaded = load_flow(write_flow(folder, name=name, targets="alice"))
    run = app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by="ed")
    assert app.engine.drive(run.id).state is RunState.WAITING_FOR_APPROVAL
    return run.id


def _csrf(client: httpx.Client, path: str = "/inbox") -> str:
    match = CSRF.search(client.get(path).text)
    assert match is not None
    return match.group(1)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("pages")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = build_app(
        Settings(home=tmp / "home", database_url=f"sqlite:///{tmp / 'db.sqlite'}", base_url=url)
    )
    hashed = hash_password(PASSWORD)
    for name, role in USERS.items():
        app.store.add_user(UserRecord(name, f"{name}@example.org", (role,), True, 0.0), hashed)
    worker = Worker(app, tick=0.2)
    config = uvicorn.Config(
        create_app(app, worker=worker),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        done = _start(app, tmp / "gated", "gated")
        site = Site(app, url, done, "")
        with site.client("alice") as alice:
            answer = alice.post(
                f"/gates/{site.gate_of(done)}/decisions",
                data={"decision": "approve", "comment": COMMENT, "csrf": _csrf(alice)},
            )
            assert answer.status_code == 303, answer.text
        deadline = time.monotonic() + 60
        while app.store.get_run(done).state is not RunState.SUCCEEDED:
            assert time.monotonic() < deadline, app.store.get_run(done)
            time.sleep(0.2)
        site.waiting = _start(app, tmp / "other", "other")
        yield site
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        for ep in app.store.list_endpoints():
            if ep.pid:
                app.endpoints.stop(ep.pid)
        app.close()


def _outbox_file(site: Site) -> str:
    files = sorted((site.app.settings.resolved_home / "outbox").glob("*.eml"))
    assert files, "the gates wrote no e-mail to the outbox"
    return files[0].name


def test_every_page_renders_for_an_admin(site: Site) -> None:
    gate, waiting_gate = site.gate_of(site.done), site.gate_of(site.waiting)
    pages = {
        "/inbox": "Other open gates",
        f"/gates/{gate}": "1 of 1 approval(s)",
        f"/gates/{waiting_gate}": "0 of 1 approval(s)",
        f"/gates/{gate}/report": "Candidates",
        "/runs": site.done,
        "/runs?flow=gated&state=succeeded": site.done,
        f"/runs/{site.done}": '<svg class="dag"',
        f"/runs/{site.waiting}": "waiting for approval",
        "/flows": "gated",
        "/models": "tiny",
        "/models/tiny": "champion",
        "/endpoints": "gated",
        "/endpoints/gated": "rollover",
        "/audit": "chain verified",
        f"/audit?run={site.done}": "decided",
        "/outbox": "Approval needed",
        f"/outbox/{_outbox_file(site)}": "Review and approve",
        "/users": "Add a user",
        "/settings": "session idle limit",
    }
    with site.client("root") as root:
        for path, text in pages.items():
            answer = root.get(path)
            assert answer.status_code == 200, (path, answer.text[:300])
            assert text in answer.text, path
            if not path.endswith("/report"):
                assert "default-src 'self'" in answer.headers["content-security-policy"]
                assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


def test_the_report_is_served_under_a_strict_policy(site: Site) -> None:
    with site.client("vic") as vic:
        answer = vic.get(f"/gates/{site.gate_of(site.done)}/report")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "sandbox" in policy
    assert "frame-ancestors 'self'" in policy
    assert "<script" not in answer.text.lower()


def test_values_are_escaped(site: Site) -> None:
    with site.client("vic") as vic:
        review = vic.get(f"/gates/{site.gate_of(site.done)}").text
        audit = vic.get("/audit").text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; fine" in review
    assert "<script>" not in review
    assert "<script>" not in audit


def test_the_run_page_draws_the_dag_by_state(site: Site) -> None:
    with site.client("vic") as vic:
        done = vic.get(f"/runs/{site.done}").text
        waiting = vic.get(f"/runs/{site.waiting}").text
    states = re.findall(r'<g class="node" data-state="([a-z_]+)">', done)
    assert states == ["succeeded", "succeeded", "approved", "succeeded"]
    assert len(re.findall(r"<path d=\"M", done)) == 3 + 1  # three edges and the arrow head
    assert 'http-equiv="refresh"' not in done  # a finished run is not refreshed
    assert re.findall(r'data-state="([a-z_]+)"', waiting)[2] == "waiting_for_approval"
    assert "auc" in done
    assert "artifact(s)" in done


def test_the_inbox_lists_gates_waiting_for_me(site: Site) -> None:
    with site.client("alice") as alice:
        page = alice.get("/inbox").text
    mine = page.split("Other open gates")[0]
    assert f"/gates/{site.gate_of(site.waiting)}" in mine
    assert "tiny:v2" in mine
    assert "auc 0.8" in mine
    assert "0 / 1" in mine


def test_a_viewer_gets_403_on_admin_and_editor_actions(site: Site) -> None:
    with site.client("vic") as vic:
        csrf = _csrf(vic)
        assert vic.get("/users").status_code == 403
        assert vic.get("/settings").status_code == 403
        assert "Users" not in vic.get("/inbox").text.split("</nav>")[0]
        added = vic.post("/users", data={"csrf": csrf, "name": "eve", "role": "admin"})
        assert added.status_code == 403
        off = vic.post("/users/root/deactivate", data={"csrf": csrf})
        assert off.status_code == 403
        cancel = vic.post(f"/runs/{site.waiting}/cancel", data={"csrf": csrf})
        assert cancel.status_code == 403
        start = vic.post("/flows/gated/runs", data={"csrf": csrf})
        assert start.status_code == 403
    assert site.app.store.get_user("eve") is None
    assert site.app.store.get_run(site.waiting).state is RunState.WAITING_FOR_APPROVAL
    assert len(site.app.store.list_runs()) == 2


def test_no_page_answers_500_to_junk(site: Site) -> None:
    gate = site.gate_of(site.waiting)
    expected = {
        "/gates/nope": 404,
        "/gates/%3Cscript%3E": 404,
        "/gates/" + "x" * 500: 404,
        "/gates/nope/report": 404,
        "/runs/nope": 404,
        "/runs/%25": 404,
        "/runs/'%20OR%201=1": 404,
        "/runs?state=bogus": 400,
        "/runs?limit=abc": 422,
        "/runs?limit=-1": 422,
        "/runs?flow=" + "f" * 300: 422,
        "/models/nope": 404,
        "/endpoints/nope": 404,
        "/outbox/nope.eml": 404,
        "/outbox/..%2F..%2Fsecret.key": 404,
        "/outbox/%2E%2E": 404,
        "/audit?run=" + "r" * 100: 422,
        "/nothing-here": 404,
    }
    with site.client("root") as root:
        csrf = _csrf(root)
        for path, status in expected.items():
            answer = root.get(path)
            assert answer.status_code == status, (path, answer.status_code, answer.text[:300])
        posts = {
            "/gates/nope/decisions": ({"decision": "approve"}, 404),
            f"/gates/{gate}/decisions": ({"decision": "maybe"}, 400),
            "/runs/nope/cancel": ({}, 404),
            f"/runs/{site.done}/cancel": ({}, 409),
            "/flows/nope/runs": ({}, 404),
            "/users/nobody/deactivate": ({}, 404),
            "/users/root/deactivate": ({}, 400),
            "/users": ({"name": "bad name!", "role": "admin"}, 400),
        }
        for path, (data, status) in posts.items():
            answer = root.post(path, data={"csrf": csrf, **data})
            assert answer.status_code == status, (path, answer.status_code, answer.text[:300])
            assert "<h1" in answer.text  # a page with a reason
        big = root.post(
            f"/gates/{gate}/decisions",
            data={"csrf": csrf, "decision": "reject", "comment": "c" * 5000},
        )
        assert big.status_code == 422
    assert site.app.store.get_run(site.waiting).state is RunState.WAITING_FOR_APPROVAL


def test_an_admin_adds_and_deactivates_a_user(site: Site) -> None:
    with site.client("root") as root:
        csrf = _csrf(root, "/users")
        added = root.post(
            "/users",
            data={"csrf": csrf, "name": "nina", "role": "viewer", "password": PASSWORD},
        )
        assert added.status_code == 303
        again = root.post("/users", data={"csrf": csrf, "name": "nina", "role": "viewer"})
        assert again.status_code == 409
        with site.client("nina") as nina:
            assert nina.get("/inbox").status_code == 200
            off = root.post("/users/nina/deactivate", data={"csrf": csrf})
            assert off.status_code == 303
            assert nina.get("/inbox").status_code == 303
    nina_record = site.app.store.get_user("nina")
    assert nina_record is not None
    assert (nina_record.roles, nina_record.active) == (("viewer",), False)


def test_an_editor_starts_and_cancels_a_run(site: Site) -> None:
    with site.client("ed") as ed:
        csrf = _csrf(ed, "/flows")
        started = ed.post("/flows/gated/runs", data={"csrf": csrf})
        assert started.status_code == 303, started.text
        run_id = started.headers["location"].rsplit("/", 1)[1]
        page = ed.get(f"/runs/{run_id}")
        assert page.status_code == 200
        cancelled = ed.post(f"/runs/{run_id}/cancel", data={"csrf": csrf})
        assert cancelled.status_code == 303
    run = site.app.store.get_run(run_id)
    assert run.state is RunState.CANCELLED
    assert run.started_by == "ed"
    assert "ed" in (run.reason or "")
