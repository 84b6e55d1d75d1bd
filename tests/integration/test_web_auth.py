"""Web sign-in against the real server over HTTP: sessions, CSRF, the login limit, IDOR.

`signoff server` runs under uvicorn on 127.0.0.1 on SQLite and on PostgreSQL; an httpx client
plays the browser. Nothing here reaches into the server's code: every check is made through
HTTP answers and the store's rows.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from gate_flows import write_flow

from conftest import Attacks
from signoff.bootstrap import App, Settings, build_app
from signoff.domain.records import UserRecord
from signoff.domain.states import RunState, TaskRunState
from signoff.server import create_app
from signoff.server.auth import MAX_FAILURES_PER_CLIENT, MAX_FAILURES_PER_USER
from signoff.server.passwords import hash_password
from signoff.spec import load_flow

PASSWORDS = {
    "alice": "alice-secret-pw",
    "bob": "bob-secret-pw-2",
    "dave": "dave-viewer-pw",
    "root": "root-admin-pw-9",
}
ROLES = {"alice": "approver", "bob": "approver", "dave": "viewer", "root": "admin"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
OFF_SITE_NEXT = "off-site next= on the sign-in page and form (//, \\, javascript:, ...)"
FORM_WITHOUT_CSRF = "admin, sign-in or sign-out form posted without the right CSRF value"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A running server: its App (for looking at rows) and its URL."""

    def __init__(self, app: App, url: str) -> None:
        self.app = app
        self.url = url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, timeout=15)


def _serve(app: App) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = _free_port()
    config = uvicorn.Config(
        create_app(app), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the server did not start"
    return server, thread, f"http://127.0.0.1:{port}"


def _build(home: Path, database_url: str, base_url: str = "http://127.0.0.1:1") -> App:
    return build_app(Settings(home=home, database_url=database_url, base_url=base_url))


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    """argon2id hashes of the test passwords, made once (hashing is slow on purpose)."""
    return {name: hash_password(password) for name, password in PASSWORDS.items()}


@pytest.fixture
def served(database_url: str, tmp_path: Path, hashes: dict[str, str]) -> Iterator[Served]:
    app = _build(tmp_path / "home", database_url)
    for name in PASSWORDS:
        app.store.add_user(
            UserRecord(name, f"{name}@example.org", (ROLES[name],), True, 0.0),
            password_hash=hashes[name],
        )
    server, thread, url = _serve(app)
    try:
        yield Served(app, url)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        app.close()


def _gate(served: Served, folder: Path, *, name: str = "gated", targets: str = "alice,bob") -> str:
    loaded = load_flow(write_flow(folder, name=name, targets=targets))
    run = served.app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by="carol")
    assert served.app.engine.drive(run.id).state is RunState.WAITING_FOR_APPROVAL
    return served.app.store.gates_of_run(run.id)[0].id


def _login(client: httpx.Client, name: str, password: str | None = None) -> httpx.Response:
    page = client.get("/login")
    assert page.status_code == 200
    match = CSRF.search(page.text)
    assert match is not None
    return client.post(
        "/login",
        data={"name": name, "password": password or PASSWORDS[name], "csrf": match.group(1)},
    )


def _csrf_of(client: httpx.Client, path: str = "/inbox") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match is not None
    return match.group(1)


def _set_cookie(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")


def _gate_state(served: Served, gate_id: str) -> TaskRunState:
    gate = served.app.store.get_gate(gate_id)
    return served.app.store.get_task_run(gate.task_run_id).state


# ------------------------------------------------------------------------ sessions
def test_a_page_without_a_session_sends_the_browser_to_login(served: Served) -> None:
    with served.client() as client:
        answer = client.get("/runs?flow=x")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=%2Fruns%3Fflow%3Dx"
        assert client.get("/").headers["location"] == "/inbox"
        posted = client.post("/runs/abc/cancel", data={"csrf": "x"})
        assert posted.status_code == 401


def test_login_sets_a_fresh_http_only_lax_cookie_and_stores_only_its_hash(
    served: Served, attacks: Attacks
) -> None:
    with served.client() as client:
        client.cookies.set("signoff_session", "planted-by-an-attacker", domain="127.0.0.1")
        client.get("/login")
        before = client.cookies.get("signoff_login")
        answer = _login(client, "alice")
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/inbox"
        header = _set_cookie(answer, "signoff_session")
        flags = {part.strip().lower() for part in header.split(";")[1:]}
        assert {"httponly", "path=/", "samesite=lax"} <= flags
        assert "secure" not in flags  # the base URL is plain http
        session = answer.cookies["signoff_session"]
        assert session not in ("planted-by-an-attacker", before)
        assert len(session) >= 40
        assert client.get("/inbox").status_code == 200
    store = served.app.store
    assert store.web_session(hashlib.sha256(session.encode()).hexdigest()) is not None
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM web_sessions")).all()
    assert len(rows) == 1
    assert session not in repr(rows)  # only the hash is kept
    with served.client() as attacker:
        attacker.cookies.set("signoff_session", "planted-by-an-attacker", domain="127.0.0.1")
        assert attacker.get("/inbox").status_code == 303  # the planted value was never promoted
    attacks.record("session id planted in the browser before sign-in (fixation)", "web", 1, 1)


def test_a_second_login_replaces_the_session_it_came_with(served: Served, attacks: Attacks) -> None:
    with served.client() as client:
        first = _login(client, "alice").cookies["signoff_session"]
        second = _login(client, "bob")
        assert second.status_code == 303
        assert second.cookies["signoff_session"] != first
    with served.client() as old:
        old.cookies.set("signoff_session", first, domain="127.0.0.1")
        assert old.get("/inbox").status_code == 303
    attacks.record("session replayed after another sign-in replaced it", "web", 1, 1)


def test_the_cookie_is_secure_when_the_base_url_is_https(
    database_url: str, tmp_path: Path, hashes: dict[str, str]
) -> None:
    app = _build(tmp_path / "home", database_url, base_url="https://signoff.example.org")
    app.store.add_user(UserRecord("alice", None, ("approver",), True, 0.0), hashes["alice"])
    server, thread, url = _serve(app)
    try:
        with httpx.Client(base_url=url, trust_env=False, timeout=15) as client:
            page = client.get("/login")
            assert "secure" in _set_cookie(page, "signoff_login").lower()
            # a Secure cookie is not sent back over http: hand it over like a browser on https
            login_cookie = page.cookies["signoff_login"]
            match = CSRF.search(page.text)
            assert match is not None
            answer = client.post(
                "/login",
                data={"name": "alice", "password": PASSWORDS["alice"], "csrf": match.group(1)},
                headers={"Cookie": f"signoff_login={login_cookie}"},
            )
            assert answer.status_code == 303, answer.text
            flags = _set_cookie(answer, "signoff_session").lower()
            assert "; secure" in flags
            assert "httponly" in flags
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        app.close()


def test_logout_ends_the_session_on_the_server(served: Served, attacks: Attacks) -> None:
    with served.client() as client:
        session = _login(client, "alice").cookies["signoff_session"]
        refused = client.post("/logout", data={"csrf": "wrong"})
        assert refused.status_code == 403
        assert client.get("/inbox").status_code == 200  # still signed in
        out = client.post("/logout", data={"csrf": _csrf_of(client)})
        assert out.status_code == 303
        assert out.headers["location"] == "/login"
    id_hash = hashlib.sha256(session.encode()).hexdigest()
    assert served.app.store.web_session(id_hash) is None
    with served.client() as replay:
        replay.cookies.set("signoff_session", session, domain="127.0.0.1")
        assert replay.get("/inbox").status_code == 303
    attacks.record(FORM_WITHOUT_CSRF, "web", 1, int(refused.status_code == 403))
    attacks.record("session replayed after sign-out", "web", 1, 1)


def test_an_idle_session_expires(served: Served, attacks: Attacks) -> None:
    with served.client() as client:
        session = _login(client, "alice").cookies["signoff_session"]
        id_hash = hashlib.sha256(session.encode()).hexdigest()
        served.app.store.touch_web_session(id_hash, time.time() - 13 * 3600)
        assert client.get("/inbox").status_code == 303
    assert served.app.store.web_session(id_hash) is None
    attacks.record("session used again after 13 idle hours", "web", 1, 1)


def test_deactivating_a_user_ends_their_sessions(served: Served) -> None:
    with served.client() as bob, served.client() as root:
        assert _login(bob, "bob").status_code == 303
        assert _login(root, "root").status_code == 303
        answer = root.post("/users/bob/deactivate", data={"csrf": _csrf_of(root, "/users")})
        assert answer.status_code == 303
        assert bob.get("/inbox").status_code == 303
        assert _login(bob, "bob").status_code == 401


def test_a_session_or_token_in_the_url_is_never_accepted(served: Served, attacks: Attacks) -> None:
    from signoff.server.tokens import issue_token

    with served.client() as client:
        session = _login(client, "alice").cookies["signoff_session"]
    token = issue_token(
        served.app.store, "alice", scopes=["read", "decide"], now=time.time(), ttl_seconds=600
    )
    refused = 0
    queries = (f"signoff_session={session}", f"session={session}", f"token={token}")
    with served.client() as bare:
        for query in queries:
            assert bare.get(f"/inbox?{query}").status_code == 303
            refused += 1
        assert bare.get("/api/v1/gates", params={"token": token}).status_code == 401
        refused += 1
        assert bare.get("/inbox", headers={"Authorization": f"Bearer {token}"}).status_code == 303
        refused += 1
    attacks.record(
        "session id or API token in the URL, or an API token on a web page", "web", refused, refused
    )


def test_the_login_form_needs_its_csrf_value_and_never_redirects_off_site(
    served: Served, attacks: Attacks
) -> None:
    with served.client() as client:
        blind = client.post("/login", data={"name": "alice", "password": PASSWORDS["alice"]})
        assert blind.status_code == 403
        assert "signoff_session" not in blind.cookies
        page = client.get("/login", params={"next": "//evil.example.org/x"})
        match = CSRF.search(page.text)
        assert match is not None
        assert "evil.example.org" not in page.text
        answer = client.post(
            "/login",
            data={
                "name": "alice",
                "password": PASSWORDS["alice"],
                "csrf": match.group(1),
                "next": "https://evil.example.org/",
            },
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/inbox"
    attacks.record(FORM_WITHOUT_CSRF, "web", 1, int(blind.status_code == 403))
    off_site = (page, answer)  # the sign-in page and its form, each given an off-site next
    attacks.record(
        OFF_SITE_NEXT,
        "web",
        len(off_site),
        sum("evil.example.org" not in a.headers.get("location", "") + a.text for a in off_site),
    )


# ---------------------------------------------------------------------- rate limit
def test_failed_logins_are_limited_per_user_across_servers(
    served: Served,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    attacks: Attacks,
) -> None:
    caplog.set_level(logging.INFO)
    guesses = 0  # sign-ins sent as alice, each answered 401 then 429
    with served.client() as client:
        for _ in range(MAX_FAILURES_PER_USER):
            assert _login(client, "alice", "wrong-password").status_code == 401
            guesses += 1
        limited = _login(client, "alice")  # even the right password is not checked now
        assert limited.status_code == 429
        guesses += 1
        assert "Too many failed sign-ins" in limited.text
        assert int(limited.headers["retry-after"]) > 0
        assert _login(client, "bob").status_code == 303  # other accounts still work
    # a second server process on the same database sees the same count
    other = _build(tmp_path / "home", database_url)
    server, thread, url = _serve(other)
    try:
        with httpx.Client(base_url=url, trust_env=False, timeout=15) as client:
            assert _login(client, "alice").status_code == 429
            guesses += 1
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        other.close()
    assert "wrong-password" not in caplog.text
    assert PASSWORDS["alice"] not in caplog.text
    attacks.record(
        "password guessing on one account, then from a second server", "web", guesses, guesses
    )


def test_failed_logins_are_limited_per_client_address(served: Served, attacks: Attacks) -> None:
    guesses = 0
    with served.client() as client:
        for i in range(MAX_FAILURES_PER_CLIENT):
            assert _login(client, f"nobody{i}", "guess").status_code == 401
            guesses += 1
        assert _login(client, "root").status_code == 429
        guesses += 1
    attacks.record(
        "password guessing over many account names from one address", "web", guesses, guesses
    )


# ----------------------------------------------------------------- CSRF and IDOR
def test_a_decision_without_the_right_csrf_value_changes_nothing(
    served: Served, tmp_path: Path, attacks: Attacks
) -> None:
    gate_id = _gate(served, tmp_path / "f")
    with served.client() as alice, served.client() as bob:
        assert _login(alice, "alice").status_code == 303
        assert _login(bob, "bob").status_code == 303
        bobs = _csrf_of(bob)
        url = f"/gates/{gate_id}/decisions"
        forged = (
            {"decision": "approve"},
            {"decision": "approve", "csrf": ""},
            {"decision": "approve", "csrf": "0" * 64},
            {"decision": "approve", "csrf": bobs},  # another session's value
        )
        refused = 0
        for data in forged:
            answer = alice.post(url, data=data)
            assert answer.status_code == 403, data
            assert "security check" in answer.text
            refused += 1
        root = served.client()
        with root:
            assert _login(root, "root").status_code == 303
            added = root.post("/users", data={"name": "mallory", "role": "admin"})
            assert added.status_code == 403
    assert _gate_state(served, gate_id) is TaskRunState.WAITING_FOR_APPROVAL
    assert served.app.store.list_decisions(gate_id) == []
    assert served.app.store.get_user("mallory") is None
    attacks.record(
        "decision posted without its session's CSRF value (none, empty, forged, another's)",
        "web",
        len(forged),
        refused,
    )
    attacks.record(FORM_WITHOUT_CSRF, "web", 1, int(added.status_code == 403))


def test_only_targets_decide_and_a_forged_post_is_refused_and_recorded(
    served: Served, tmp_path: Path, attacks: Attacks
) -> None:
    gate_id = _gate(served, tmp_path / "f")
    bobs_gate = _gate(served, tmp_path / "g", name="other", targets="bob")
    with served.client() as dave, served.client() as alice:
        assert _login(dave, "dave").status_code == 303
        page = dave.get(f"/gates/{gate_id}")
        assert page.status_code == 200
        assert 'value="approve"' not in page.text
        assert "not an approver of this gate" in page.text
        forged = dave.post(
            f"/gates/{gate_id}/decisions",
            data={"decision": "approve", "csrf": _csrf_of(dave)},
        )
        assert forged.status_code == 403
        assert "not an approver" in forged.text
        assert _login(alice, "alice").status_code == 303
        csrf = _csrf_of(alice)
        others = alice.post(
            f"/gates/{bobs_gate}/decisions", data={"decision": "approve", "csrf": csrf}
        )
        assert others.status_code == 403
        missing = alice.post(
            "/gates/000000000000/decisions", data={"decision": "approve", "csrf": csrf}
        )
        assert missing.status_code == 404
        no_gate = alice.get("/gates/000000000000")
        assert no_gate.status_code == 404
        no_run = alice.get("/runs/000000000000")
        assert no_run.status_code == 404
        no_cancel = alice.post("/runs/000000000000/cancel", data={"csrf": csrf})
        assert no_cancel.status_code == 403
        mine = alice.post(
            f"/gates/{gate_id}/decisions",
            data={"decision": "approve", "comment": "fine\x00", "csrf": csrf},
        )
        assert mine.status_code == 303
        assert mine.headers["location"] == f"/gates/{gate_id}"
    assert _gate_state(served, gate_id) is TaskRunState.APPROVED
    assert _gate_state(served, bobs_gate) is TaskRunState.WAITING_FOR_APPROVAL
    refused = [
        (d.actor, d.channel)
        for g in (gate_id, bobs_gate)
        for d in served.app.store.list_decisions(g)
        if d.decision == "refused"
    ]
    assert sorted(refused) == [("alice", "web"), ("dave", "web")]
    approved = [d for d in served.app.store.list_decisions(gate_id) if d.decision == "approve"]
    assert [(d.actor, d.comment) for d in approved] == [("alice", "fine")]
    events = [(e.event, e.actor) for e in served.app.store.list_audit()]
    assert ("refused", "dave") in events
    assert ("decided", "alice") in events
    tried = (forged, others, missing, no_gate, no_run, no_cancel)
    attacks.record(
        "decision or read on a gate or run that is not yours or does not exist (IDOR)",
        "web",
        len(tried),
        sum(400 <= answer.status_code < 500 for answer in tried),
    )


def test_control_characters_get_answers_not_errors(served: Served, attacks: Attacks) -> None:
    answered = 0  # requests with a NUL byte, each answered with its expected status
    with served.client() as client:
        assert _login(client, "ali\x00ce", "x").status_code == 401
        answered += 1
        assert _login(client, "root").status_code == 303
        for path, status in {
            "/gates/a%00b": 404,
            "/runs/a%00b": 404,
            "/models/x%00": 404,
            "/endpoints/%00": 404,
            "/runs?flow=%00": 200,
            "/audit?run=%00": 200,
            "/login?next=/inbox%00": 200,
        }.items():
            assert client.get(path).status_code == status, path
            answered += 1
        csrf = _csrf_of(client, "/users")
        bad = client.post("/users", data={"csrf": csrf, "name": "eve", "email": "e\x00@x.org"})
        assert bad.status_code == 400
        answered += 1
        assert client.post("/users/x%00/deactivate", data={"csrf": csrf}).status_code == 404
        answered += 1
    attacks.record("NUL bytes in names, paths, queries and form fields", "web", answered, answered)
