"""Gate e-mails through a real SMTP server, and their links against the real server.

An aiosmtpd server on 127.0.0.1 receives the messages and an HTTP server on 127.0.0.1 plays
the team channel's webhook; `signoff server` runs under uvicorn on 127.0.0.1; an HTTP client
follows the links: GET changes nothing, only a POST with the CSRF value decides, a link works
once, and forged or stale links are refused. The webhook gets the review page, never a link.
"""

from __future__ import annotations

import dataclasses
import email
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from gate_flows import write_flow

from conftest import Attacks
from signoff.bootstrap import App, Settings, build_app
from signoff.domain.audit import verify_chain
from signoff.domain.records import UserRecord
from signoff.domain.states import RunState, TaskRunState
from signoff.server import create_app
from signoff.server.worker import Worker
from signoff.spec import load_flow


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


class Hook:
    """A webhook receiver: the raw body of every POST, and the status it answers with."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.status = 200


SECRET = "B0-secret-part-of-the-url"  # incoming-webhook URLs are secrets themselves


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    received = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.bodies.append(self.rfile.read(length))
            self.send_response(received.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, f"http://127.0.0.1:{server.server_port}/services/T0/{SECRET}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Served:
    def __init__(self, app: App, url: str, worker: Worker) -> None:
        self.app = app
        self.url = url
        self.worker = worker


@pytest.fixture
def served(
    smtp: tuple[Inbox, int], hook: tuple[Hook, str], database_url: str, tmp_path: Path
) -> Iterator[Served]:
    _, smtp_port = smtp
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = build_app(
        Settings(
            home=tmp_path / "home",
            database_url=database_url,
            base_url=url,
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            mail_from="signoff@example.org",
            webhook_url=hook[1],
        )
    )
    for name in ("alice", "bob"):
        app.store.add_user(UserRecord(name, f"{name}@example.org", ("approver",), True, 0.0))
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
        time.sleep(0.05)
    try:
        yield Served(app, url, worker)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        for ep in app.store.list_endpoints():
            if ep.pid:
                app.endpoints.stop(ep.pid)
        app.close()


def _start(served: Served, folder: Path, policy: str = "") -> str:
    loaded = load_flow(write_flow(folder, policy=policy))
    run = served.app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by="carol")
    return served.app.engine.drive(run.id).id


def _links(msg: EmailMessage) -> dict[str, str]:
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    found = dict(re.findall(r"Review and (approve|reject):\s+(\S+)", text))
    return found


def _by_user(inbox: Inbox) -> dict[str, EmailMessage]:
    return {str(m["To"]).split("@")[0]: m for m in inbox.messages}


def _gate_state(app: App, run_id: str) -> TaskRunState:
    gate = app.store.gates_of_run(run_id)[0]
    return app.store.get_task_run(gate.task_run_id).state


def _confirm(client: httpx.Client, link: str, comment: str = "") -> httpx.Response:
    page = client.get(link)
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return client.post(link, data={"csrf": csrf.group(1), "comment": comment})


def test_each_approver_gets_an_email_with_links(
    served: Served, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, _ = smtp
    run_id = _start(served, tmp_path / "f")
    mails = _by_user(inbox)
    assert sorted(mails) == ["alice", "bob"]
    alice = mails["alice"]
    assert f"run {run_id}" in str(alice["Subject"])
    assert alice.get_body(("html",)) is not None
    links = _links(alice)
    assert sorted(links) == ["approve", "reject"]
    assert all(u.startswith(served.url + "/links/") for u in links.values())
    gate = served.app.store.gates_of_run(run_id)[0]
    sent = served.app.store.notifications_of(gate.id)
    assert sorted((n["user_name"], n["channel"]) for n in sent) == [
        ("*", "webhook"),  # one notice for the channel, not one per approver
        ("alice", "email"),
        ("bob", "email"),
    ]


def test_get_changes_nothing_and_post_decides(
    served: Served, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, _ = smtp
    run_id = _start(served, tmp_path / "f")
    link = _links(_by_user(inbox)["alice"])["approve"]
    with httpx.Client(trust_env=False, timeout=10) as client:
        for _ in range(3):  # mail scanners and previews fetch links
            page = client.get(link)
            assert page.status_code == 200
            assert "Approve and continue" in page.text
        assert _gate_state(served.app, run_id) is TaskRunState.WAITING_FOR_APPROVAL
        report = client.get(link + "/report")
        assert report.status_code == 200
        answer = _confirm(client, link, "looks right")
        assert answer.status_code == 200, answer.text
        assert "approved" in answer.text
        assert _gate_state(served.app, run_id) is TaskRunState.APPROVED
        again = client.get(link)
        assert again.status_code == 410
        assert "already used" in again.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if served.app.store.get_run(run_id).state is RunState.SUCCEEDED:
            break
        time.sleep(0.2)
    assert served.app.store.get_run(run_id).state is RunState.SUCCEEDED  # the worker deployed
    gate = served.app.store.gates_of_run(run_id)[0]
    [decision] = [d for d in served.app.store.list_decisions(gate.id) if d.decision == "approve"]
    assert (decision.actor, decision.channel, decision.comment) == ("alice", "email", "looks right")
    assert decision.report_digest == gate.report_digest
    assert verify_chain(served.app.store.list_audit(), served.app.audit_key) == []


def test_post_without_the_csrf_value_is_refused(
    served: Served, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, _ = smtp
    run_id = _start(served, tmp_path / "f")
    link = _links(_by_user(inbox)["bob"])["approve"]
    with httpx.Client(trust_env=False, timeout=10) as client:
        forged = client.post(link, data={"csrf": "x", "comment": ""})
        assert forged.status_code == 403
        client.get(link)  # a real page visit sets the cookie, but the value must match too
        wrong = client.post(link, data={"csrf": "not-the-value"})
        assert wrong.status_code == 403
    assert _gate_state(served.app, run_id) is TaskRunState.WAITING_FOR_APPROVAL


def test_forged_and_stale_links_answer_plainly(
    served: Served, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, _ = smtp
    run_id = _start(served, tmp_path / "f")
    links = _links(_by_user(inbox)["alice"])
    bob_reject = _links(_by_user(inbox)["bob"])["reject"]
    with httpx.Client(trust_env=False, timeout=10) as client:
        token = links["approve"].rsplit("/", 1)[1]
        payload, sig = token.split(".")
        tampered = f"{served.url}/links/{payload}.{sig[:-2]}AA"
        assert client.get(tampered).status_code == 403
        assert client.get(f"{served.url}/links/garbage").status_code == 403
        assert _confirm(client, links["approve"]).status_code == 200
        late = client.get(bob_reject)
        assert late.status_code == 409
        assert "no longer open" in late.text
    assert _gate_state(served.app, run_id) is TaskRunState.APPROVED


def test_links_use_the_configured_base_url_not_the_host_header(
    served: Served, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, _ = smtp
    _start(served, tmp_path / "f")
    link = _links(_by_user(inbox)["alice"])["approve"]
    with httpx.Client(trust_env=False, timeout=10) as client:
        page = client.get(link, headers={"Host": "evil.example.com"})
    assert page.status_code == 200
    assert "evil.example.com" not in page.text
    assert f'action="{served.url}/links/' in page.text


def test_reminders_follow_remind_every(
    served: Served, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, _ = smtp

    class Later:
        def __init__(self, start: float) -> None:
            self.t = start

        def now(self) -> float:
            return self.t

    run_id = _start(served, tmp_path / "f", policy="remind_every: 1h")
    assert len(inbox.messages) == 2
    clock = Later(time.time() + 3700)
    # a copy with the later clock: the server's worker keeps the real one, so it never
    # sends these reminders itself while the test counts them
    gates = dataclasses.replace(served.app.gates, clock=clock)
    assert gates.remind_due() != []
    reminders = [m for m in inbox.messages if str(m["Subject"]).startswith("Reminder:")]
    assert sorted(str(m["To"]) for m in reminders) == ["alice@example.org", "bob@example.org"]
    assert gates.remind_due() == []  # not again before another hour
    events = [(e.event, e.data.get("channel")) for e in served.app.store.list_audit(run_id)]
    assert events.count(("reminded", "email")) == 2
    assert events.count(("reminded", "webhook")) == 1


def test_the_webhook_gets_the_review_page_and_no_personal_link(
    served: Served,
    smtp: tuple[Inbox, int],
    hook: tuple[Hook, str],
    tmp_path: Path,
    attacks: Attacks,
) -> None:
    inbox, _ = smtp
    received, _ = hook
    run_id = _start(served, tmp_path / "f", policy="remind_every: 1h")
    gate = served.app.store.gates_of_run(run_id)[0]
    links = [link for mail in inbox.messages for link in _links(mail).values()]
    assert len(links) == 4  # the e-mails still carry each approver's own links
    secrets = {part for link in links for part in link.rsplit("/", 1)[1].split(".")}
    [body] = received.bodies  # one notice for the gate, not one per approver
    text = body.decode()
    assert "/links/" not in text
    assert not [part for part in secrets if part in text]
    posted = json.loads(body)
    assert f"Review (sign in to decide): {served.url}/gates/{gate.id}\n" in posted["text"]
    assert "a decision by alice, bob" in posted["text"]
    assert posted["signoff"] == {"key": f"{gate.id}:*:opened:0"}
    assert served.app.gates.notify(gate, kind="opened") == []  # effectively once
    assert (len(received.bodies), len(inbox.messages)) == (1, 2)
    with httpx.Client(trust_env=False, timeout=10) as client:
        review = client.get(f"{served.url}/gates/{gate.id}")
    assert review.status_code == 303  # the channel's readers sign in to see or decide
    assert review.headers["location"].startswith("/login?next=")

    class Later:
        def __init__(self, start: float) -> None:
            self.t = start

        def now(self) -> float:
            return self.t

    clock = Later(time.time() + 3700)
    gates = dataclasses.replace(served.app.gates, clock=clock)  # the worker keeps real time
    assert gates.remind_due() == [gate.id]
    assert (len(received.bodies), len(inbox.messages)) == (2, 4)
    reminder = received.bodies[1].decode()
    assert "Reminder: Approval needed" in reminder
    assert "/links/" not in reminder
    received.status = 500  # the channel is down: the e-mails still go, the failure is audited
    clock.t += 3700
    assert gates.remind_due() == [gate.id]
    assert (len(received.bodies), len(inbox.messages)) == (3, 6)
    events = served.app.store.list_audit(run_id)
    notices = sorted(
        (e.event, e.actor or "", e.data["channel"])
        for e in events
        if e.event in ("notified", "reminded", "notify_failed")
    )
    assert notices == [
        ("notified", "", "webhook"),
        ("notified", "alice", "email"),
        ("notified", "bob", "email"),
        ("notify_failed", "", "webhook"),
        ("reminded", "", "webhook"),
        ("reminded", "alice", "email"),
        ("reminded", "alice", "email"),
        ("reminded", "bob", "email"),
        ("reminded", "bob", "email"),
    ]
    assert SECRET not in json.dumps([e.data for e in events])  # the audit names the host only
    assert verify_chain(served.app.store.list_audit(), served.app.audit_key) == []
    sent = [body.decode() for body in received.bodies]
    attacks.record(
        "team-channel notice (opening, reminders) carrying a personal decision link",
        "webhook",
        len(sent),
        sum("/links/" not in text and not any(part in text for part in secrets) for text in sent),
    )
    audited = [e for e in events if e.data.get("channel") == "webhook"]
    attacks.record(
        "the webhook URL's secret part written to the audit log",
        "webhook",
        len(audited),
        sum(SECRET not in json.dumps(e.data) for e in audited),
    )


def test_the_api_decides_with_a_token_and_never_from_a_url(served: Served, tmp_path: Path) -> None:
    from signoff.server.tokens import issue_token

    run_id = _start(served, tmp_path / "f")
    gate = served.app.store.gates_of_run(run_id)[0]
    token = issue_token(
        served.app.store, "bob", scopes=["read", "decide"], now=time.time(), ttl_seconds=3600
    )
    url = f"{served.url}/api/v1/gates/{gate.id}/decisions"
    with httpx.Client(trust_env=False, timeout=10) as client:
        assert client.post(url, json={"decision": "approve"}).status_code == 401
        in_url = client.post(url + f"?token={token}", json={"decision": "approve"})
        assert in_url.status_code == 401
        bad = client.post(
            url, json={"decision": "maybe"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert bad.status_code == 422
        ok = client.post(
            url,
            json={"decision": "approve", "comment": "via api"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["gate_state"] == "approved"
        again = client.post(
            url,
            json={"decision": "reject", "comment": "late"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert again.status_code == 409
        assert "already decided" in again.json()["detail"]
