"""The REST API against a real server: uvicorn on 127.0.0.1, a real store, the real worker.

Every resource, token checks (missing, wrong scope, expired, revoked, in a URL), the answers
to bad input (positions of flow issues, malformed JSON, oversize bodies, ids that name
nothing), and a run started, driven to its gate, approved and finished through the API.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.records import DeploymentRecord, EndpointRecord, UserRecord
from signoff.errors import ScopeError
from signoff.server import create_app
from signoff.server.tokens import issue_token
from signoff.server.worker import Worker
from signoff.views import build
from signoff.views.models import RunRow

RESOURCES = Path(__file__).parents[1] / "resources"

FLOW = """flow: api-demo
params:
  - key: seed
    values: 1
tasks:
  - title: train
    command: python train.py {{ seed }}
  - title: grid
    command: python -c "print('n={{ n }}')"
    params:
      - key: n
        values: [1, 2]
  - title: pick
    type: select
    depends_on: train
    conditions: [{tag_key: auc}]
  - title: sign-off
    depends_on: [pick, grid]
    objective: human_validation
    target: alice,bob
  - title: after
    depends_on: sign-off
    command: python -c "print('after the gate')"
"""

BAD_FLOW = """flow: broken
tasks:
  - title: a
    command: echo a
    depends_on: nowhere
  - title: b
    colour: blue
    command: echo b
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A running server, its wired App, and tokens for each kind of caller."""

    def __init__(self, app: App, url: str, folder: Path) -> None:
        self.app = app
        self.url = url
        self.folder = folder
        self.tokens: dict[str, str] = {}

    def client(self, who: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers=headers, timeout=30, trust_env=False
        )


def _token(app: App, user: str, *scopes: str, ttl: float | None = 3600) -> str:
    return issue_token(app.store, user, scopes=scopes, now=time.time(), ttl_seconds=ttl)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database for the module's server: SQLite, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'signoff.db'}"
        return
    admin: sa.Engine = request.getfixturevalue("pg_admin")
    name = f"signoff_api_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def served(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("api")
    folder = base / "flow"
    folder.mkdir()
    shutil.copy(RESOURCES / "gates" / "train.py", folder / "train.py")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = build_app(
        Settings(
            home=base / "home",
            database_url=database,
            base_url=url,
            slots=2,
        )
    )
    for name, roles in (
        ("alice", ("approver",)),
        ("bob", ("approver",)),
        ("carol", ("editor",)),
        ("root", ("admin",)),
    ):
        app.store.add_user(UserRecord(name, f"{name}@example.org", roles, True, 0.0))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(app, worker=Worker(app, tick=0.2)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    s = Served(app, url, folder)
    app.store.update_user("carol", roles=("editor", "admin"))  # an admin for a moment...
    carol_admin = _token(app, "carol", "read", "admin")
    app.store.update_user("carol", roles=("editor",))  # ...then not: her token must follow
    s.tokens = {
        "root": _token(app, "root", "read", "run", "decide", "admin"),
        "alice": _token(app, "alice", "read", "decide"),
        "bob_read": _token(app, "bob", "read"),
        "carol": _token(app, "carol", "read", "run"),
        "carol_admin_scope": carol_admin,
        "expired": _token(app, "alice", "read", "decide", ttl=-1),
    }
    revoked = _token(app, "alice", "read", "decide")
    app.store.revoke_api_token(revoked.split("_")[1], time.time())
    s.tokens["revoked"] = revoked
    try:
        yield s
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        app.close()


def _wait(served: Served, run_id: str, *states: str, timeout: float = 60) -> dict[str, Any]:
    with served.client("root") as c:
        deadline = time.monotonic() + timeout
        while True:
            doc: dict[str, Any] = c.get(f"/runs/{run_id}").json()
            if doc["state"] in states or time.monotonic() > deadline:
                assert doc["state"] in states, doc
                return doc
            time.sleep(0.1)


def _start(served: Served, who: str = "carol") -> str:
    with served.client(who) as c:
        answer = c.post(
            "/runs", json={"flow_yaml": FLOW, "base_dir": str(served.folder), "params": {"seed": 2}}
        )
    assert answer.status_code == 201, answer.text
    assert answer.json()["state"] == "queued"
    run_id: str = answer.json()["run_id"]
    return run_id


@pytest.fixture(scope="module")
def waiting_run(served: Served) -> str:
    """A run of the demo flow, driven by the server's worker to its gate."""
    run_id = _start(served)
    _wait(served, run_id, "waiting_for_approval")
    return run_id


# ------------------------------------------------------------------------- tokens
def test_no_token_or_a_token_in_the_url_is_401(served: Served) -> None:
    token = served.tokens["root"]
    with served.client() as c:
        for path in ("/runs", "/flows", "/gates", "/models", "/endpoints", "/audit", "/users"):
            answer = c.get(path)
            assert answer.status_code == 401, path
            assert "Bearer" in answer.json()["detail"]
        assert c.get("/runs", params={"token": token}).status_code == 401
        assert c.get("/runs", params={"access_token": token}).status_code == 401
        assert c.get("/runs", headers={"Authorization": f"Basic {token}"}).status_code == 401
        assert c.get("/runs", headers={"Authorization": "Bearer so_nope_nope"}).status_code == 401


def test_expired_and_revoked_tokens_are_401(served: Served) -> None:
    for who in ("expired", "revoked"):
        with served.client(who) as c:
            answer = c.get("/runs")
            assert answer.status_code == 401, who
            assert "expired or revoked" in answer.json()["detail"]


def test_a_token_without_the_scope_is_403(served: Served, waiting_run: str) -> None:
    with served.client("bob_read") as c:
        assert c.get("/runs").status_code == 200
        refused = c.post(f"/runs/{waiting_run}/decisions", json={"decision": "approve"})
        assert refused.status_code == 403
        assert "'decide'" in refused.json()["detail"]
        assert c.post("/runs", json={"flow": "api-demo"}).status_code == 403
        assert c.post(f"/runs/{waiting_run}/cancel").status_code == 403
        assert c.get("/users").status_code == 403
    with served.client("alice") as c:
        assert c.post("/runs", json={"flow": "api-demo"}).status_code == 403
    with served.client("carol_admin_scope") as c:  # a scope her role no longer allows
        refused = c.get("/users")
        assert refused.status_code == 403
        assert "'admin' is missing" in refused.json()["detail"]
        assert c.get("/users/me").json()["scopes"] == ["read"]
    with pytest.raises(ScopeError, match="may not hold a token with scope"):
        _token(served.app, "carol", "read", "admin")
    with served.client("alice") as c:
        me = c.get("/users/me").json()
    assert me == {"user": "alice", "scopes": ["read", "decide"], "roles": ["approver"]}


# ---------------------------------------------------------------------------- flows
def test_validate_answers_the_spec_or_every_issue_with_its_position(served: Served) -> None:
    with served.client("alice") as c:
        good = c.post("/flows/validate", content=FLOW, headers={"content-type": "text/plain"})
        assert good.status_code == 200, good.text
        body = good.json()
        assert (body["valid"], body["name"], body["tasks"]) == (True, "api-demo", 5)
        assert len(body["spec_hash"]) == 64
        bad = c.post("/flows/validate", content=BAD_FLOW)
        assert bad.status_code == 422
        issues = bad.json()["issues"]
        assert bad.json()["detail"]
        assert len(issues) >= 2
        where = {(i["line"], i["field"]) for i in issues}
        assert any(line == 5 and "depends_on" in field for line, field in where), issues
        assert any(line == 7 and "colour" in field for line, field in where), issues
        assert all(i["file"] == "<request>" and i["column"] >= 1 for i in issues)
        latin1 = c.post("/flows/validate", content=b"flow: caf\xe9\n")
        assert latin1.status_code == 422
        assert latin1.json()["issues"][0]["line"] == 1
        empty = c.post("/flows/validate", content=b"")
        assert empty.status_code == 422


def test_flows_list_their_latest_version_and_runs(served: Served, waiting_run: str) -> None:
    with served.client("alice") as c:
        flows = c.get("/flows").json()
        [demo] = [f for f in flows if f["name"] == "api-demo"]
        detail = c.get("/flows/api-demo").json()
        assert detail["latest_hash"] == demo["latest_hash"]
        assert waiting_run in [r["run_id"] for r in detail["recent_runs"]]
        assert [t["name"] for t in detail["spec"]["tasks"]][:2] == ["train", "grid"]
        assert c.get("/flows/no-such-flow").status_code == 404
        assert c.get("/flows/%00").status_code == 404


# ----------------------------------------------------------------------------- runs
def test_a_run_shows_like_the_cli_and_lists_with_filters(served: Served, waiting_run: str) -> None:
    with served.client("alice") as c:
        detail = c.get(f"/runs/{waiting_run}")
        assert detail.status_code == 200
        run = served.app.store.get_run(waiting_run)
        assert detail.json() == build.run_detail(served.app.store, run).model_dump(mode="json")
        assert c.get(f"/runs/{waiting_run[:8]}").json()["run_id"] == waiting_run
        waiting = c.get("/runs", params={"state": "waiting_for_approval", "flow": "api-demo"})
        assert waiting_run in [r["run_id"] for r in waiting.json()]
        rows = c.get("/runs", params={"limit": 1}).json()
        assert len(rows) == 1
        assert set(rows[0]) == set(RunRow.model_fields)
        assert c.get("/runs", params={"flow": "nothing-like-it"}).json() == []
        assert c.get("/runs", params={"state": "sleeping"}).status_code == 422
        assert c.get("/runs", params={"limit": 0}).status_code == 422
        assert c.get("/runs", params={"limit": 10**30}).status_code == 422


def test_task_runs_and_their_logs(served: Served, waiting_run: str) -> None:
    with served.client("alice") as c:
        tasks = c.get(f"/runs/{waiting_run}/tasks").json()
        labels = [t["label"] for t in tasks]
        assert labels == ["train", "grid[0]", "grid[1]", "pick", "sign-off", "after"]
        logs = c.get(f"/runs/{waiting_run}/tasks/grid[1]/logs")
        assert logs.status_code == 200
        assert logs.headers["content-type"].startswith("text/plain")
        assert logs.text == "n=2\n"
        assert logs.headers["x-log-truncated"] == "false"
        tail = c.get(f"/runs/{waiting_run}/tasks/grid[1]/logs", params={"tail": 2})
        assert (tail.text, tail.headers["x-log-truncated"]) == ("2\n", "true")
        by_id = c.get(f"/runs/{waiting_run}/tasks/{tasks[1]['task_run_id']}/logs")
        assert by_id.text == "n=1\n"
        assert c.get(f"/runs/{waiting_run}/tasks/after/logs").text == ""  # not run yet
        assert c.get(f"/runs/{waiting_run}/tasks/nope/logs").status_code == 404
        assert c.get(f"/runs/{waiting_run}/tasks/grid[1]/logs?tail=0").status_code == 422
        assert c.get(f"/runs/{waiting_run}/tasks/grid[1]/logs?tail=99999999").status_code == 422


def test_another_runs_task_is_not_found(served: Served, waiting_run: str) -> None:
    other = _start(served)
    try:
        with served.client("alice") as c:
            mine = c.get(f"/runs/{waiting_run}/tasks").json()
            theirs = c.get(f"/runs/{other}/tasks").json()
            for task in theirs:
                answer = c.get(f"/runs/{waiting_run}/tasks/{task['task_run_id']}/logs")
                assert answer.status_code == 404
            assert {t["task_run_id"] for t in mine}.isdisjoint(t["task_run_id"] for t in theirs)
    finally:
        with served.client("carol") as c:
            c.post(f"/runs/{other}/cancel", json={"reason": "test over"})


def test_unknown_and_malformed_ids_are_404(served: Served) -> None:
    with served.client("root") as c:
        for path in (
            "/runs/0123456789ab",
            "/runs/not-an-id",
            "/runs/%25",
            "/runs/0123456789ab/tasks",
            "/runs/zz/tasks/train/logs",
            "/gates/0123456789ab",
            "/gates/..%2F..",
            "/models/nope",
            "/endpoints/nope",
            "/audit?run_id=0123456789ab",
        ):
            answer = c.get(path)
            assert answer.status_code == 404, path
            assert answer.json()["detail"]
        assert c.post("/runs/0123456789ab/cancel").status_code == 404
        assert c.post("/runs", json={"flow": "no-such-flow"}).status_code == 404


def test_bad_bodies_get_4xx_with_a_reason(served: Served) -> None:
    with served.client("root") as c:
        malformed = c.post(
            "/runs", content=b'{"flow_yaml": ', headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 422
        assert isinstance(malformed.json()["detail"], str)
        not_utf8 = c.post(
            "/users", content=b'{"name": "\xff"}', headers={"content-type": "application/json"}
        )
        assert not_utf8.status_code == 422
        assert "not valid JSON" in not_utf8.json()["detail"]
        both = c.post("/runs", json={"flow_yaml": FLOW, "flow": "api-demo"})
        assert both.status_code == 422
        assert "exactly one" in both.json()["detail"]
        assert c.post("/runs", json={"flow": "api-demo", "extra": 1}).status_code == 422
        nan = c.post(
            "/runs",
            content=b'{"flow": "api-demo", "params": {"seed": NaN}}',
            headers={"content-type": "application/json"},
        )
        assert nan.status_code == 422
        unknown_param = c.post("/runs", json={"flow_yaml": FLOW, "params": {"nope": 1}})
        assert unknown_param.status_code == 400
        assert "unknown param" in unknown_param.json()["detail"]
        relative = c.post("/runs", json={"flow_yaml": FLOW, "base_dir": "flow"})
        assert relative.status_code == 400
        bad_flow = c.post("/runs", json={"flow_yaml": BAD_FLOW})
        assert bad_flow.status_code == 422
        assert bad_flow.json()["issues"][0]["file"] == "<flow_yaml>"
        big = c.post("/flows/validate", content=b"#" * (2 << 20))
        assert big.status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: the stream itself is capped
            for _ in range(40):
                yield b"#" * 65536

        streamed = c.post("/flows/validate", content=chunks())
        assert streamed.status_code == 413
        assert "larger than" in streamed.json()["detail"]
        decision = c.post("/gates/0123456789ab/decisions", json={"decision": "maybe"})
        assert decision.status_code == 422


def test_nul_characters_never_reach_the_store(served: Served, waiting_run: str) -> None:
    with served.client("root") as c:  # PostgreSQL text cannot hold them: 422, not 500
        for path, body in (
            (f"/runs/{waiting_run}/decisions", {"decision": "reject", "comment": "a\x00b"}),
            (f"/runs/{waiting_run}/cancel", {"reason": "\x00"}),
            ("/runs", {"flow": "api-demo", "params": {"seed": "\x00"}}),
            ("/runs", {"flow": "api-demo", "params": {"\x00": 1}}),
            ("/users", {"name": "a\x00"}),
        ):
            answer = c.post(path, json=body)
            assert answer.status_code == 422, (path, answer.text)
        flow = c.post("/runs", json={"flow_yaml": FLOW.replace("api-demo", "api\x00demo")})
        assert flow.status_code == 422
        assert c.get("/runs", params={"flow": "a\x00"}).json() == []
    assert served.app.store.get_run(waiting_run).state.value == "waiting_for_approval"


# -------------------------------------------------------------- the whole way round
def test_start_gate_decide_succeed_through_the_api(served: Served) -> None:
    run_id = _start(served)
    doc = _wait(served, run_id, "waiting_for_approval")
    [gate] = doc["gates"]
    with served.client("alice") as c:
        gates = c.get("/gates").json()
        row = next(g for g in gates if g["gate_id"] == gate["gate_id"])
        assert (row["run_id"], row["flow"], row["required"]) == (run_id, "api-demo", 1)
        assert c.get(f"/gates/{gate['gate_id']}").json()["targets"] == ["alice", "bob"]
        decided = c.post(
            f"/runs/{run_id[:8]}/decisions", json={"decision": "approve", "comment": "fine"}
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["gate_state"] == "approved"
        again = c.post(
            f"/gates/{gate['gate_id']}/decisions", json={"decision": "reject", "comment": "no"}
        )
        assert again.status_code == 409
    done = _wait(served, run_id, "succeeded")
    assert [t["state"] for t in done["tasks"]][-1] == "succeeded"
    [decision] = done["gates"][0]["decisions"]
    assert (decision["actor"], decision["channel"], decision["comment"]) == (
        "alice",
        "api",
        "fine",
    )
    with served.client("alice") as c:
        assert c.get(f"/runs/{run_id}/tasks/after/logs").text == "after the gate\n"
        audit = c.get("/audit", params={"run_id": run_id}).json()
        events = [e["event"] for e in audit]
        assert "gate_opened" in events
        assert "decided" in events
        assert c.get("/audit/verify").json()["intact"] is True


def test_rerun_a_stored_flow_then_cancel_it(served: Served, waiting_run: str) -> None:
    with served.client("carol") as c:
        again = c.post("/runs", json={"flow": "api-demo", "params": {"seed": 3}})
        assert again.status_code == 201, again.text
        run_id = again.json()["run_id"]
    doc = _wait(served, run_id, "waiting_for_approval", "running", "queued")
    first = served.app.store.get_run(waiting_run)
    assert doc["flow_hash"] == first.flow_hash
    with served.client("carol") as c:
        cancelled = c.post(f"/runs/{run_id}/cancel", json={"reason": "wrong seed"})
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        assert "wrong seed" in cancelled.json()["reason"]
        twice = c.post(f"/runs/{run_id}/cancel")
        assert twice.status_code == 409
    with served.client("alice") as c:
        closed = c.post(f"/runs/{run_id}/decisions", json={"decision": "approve"})
        assert closed.status_code in (404, 409)


# ---------------------------------------------------------- models, endpoints, users
def test_models_with_versions_aliases_and_history(served: Served, waiting_run: str) -> None:
    store = served.app.store
    [mv] = [m for m in store.list_model_versions("tiny") if m.run_id == waiting_run]
    store.set_alias("tiny", "challenger", mv.id, actor="root", at=time.time(), reason="test")
    with served.client("alice") as c:
        models = c.get("/models").json()
        [tiny] = [m for m in models if m["name"] == "tiny"]
        assert tiny["versions"] >= 1
        assert tiny["aliases"]["challenger"] == mv.label
        detail = c.get("/models/tiny").json()
    version = next(v for v in detail["versions"] if v["id"] == mv.id)
    assert (version["label"], version["digest"], version["run_id"]) == (
        mv.label,
        mv.digest,
        waiting_run,
    )
    assert "challenger" in version["aliases"]
    assert detail["alias_history"][-1]["model_version"] == mv.label
    assert detail["alias_history"][-1]["reason"] == "test"


def test_endpoints_with_deployments(served: Served, waiting_run: str) -> None:
    store = served.app.store
    [mv] = [m for m in store.list_model_versions("tiny") if m.run_id == waiting_run]
    now = time.time()
    store.save_endpoint(
        EndpointRecord("api-ep", "http://127.0.0.1:9", 9, None, mv.id, "stopped", now)
    )
    store.add_deployment(
        DeploymentRecord("dep1", "api-ep", mv.id, waiting_run, None, "root", now, reason="test")
    )
    with served.client("alice") as c:
        [ep] = [e for e in c.get("/endpoints").json() if e["name"] == "api-ep"]
        assert (ep["state"], ep["model_version"]) == ("stopped", mv.label)
        detail = c.get("/endpoints/api-ep").json()
    [dep] = detail["deployments"]
    assert (dep["kind"], dep["model_version"], dep["deployed_by"]) == ("rollover", mv.label, "root")


def test_users_are_listed_and_added_by_admins(served: Served) -> None:
    with served.client("root") as c:
        names = [u["name"] for u in c.get("/users").json()]
        assert {"alice", "bob", "carol", "root"} <= set(names)
        made = c.post("/users", json={"name": "dave", "email": "dave@example.org"})
        assert made.status_code == 201
        assert made.json()["roles"] == ["approver"]
        assert c.post("/users", json={"name": "dave"}).status_code == 409
        assert c.post("/users", json={"name": "bad name"}).status_code == 422
        assert c.post("/users", json={"name": "eve", "roles": ["god"]}).status_code == 422
        assert c.post("/users", json={"name": "eve", "email": "no-at-sign"}).status_code == 422
    assert served.app.store.get_user("dave") is not None
    with served.client("alice") as c:
        assert c.post("/users", json={"name": "mallory"}).status_code == 403
    assert served.app.store.get_user("mallory") is None
