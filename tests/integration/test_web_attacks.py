"""Attacks on the web layer over HTTP, against the real server on SQLite and on PostgreSQL.

`signoff server` runs under uvicorn on 127.0.0.1 with the outbox for mail; a run waits at its
gate, and the approvers' decision links are read from the outbox's e-mails. An httpx client
plays the browser (or the attacker): a link opened in someone else's session, forged Host
headers against every route, non-ASCII, overlong and empty secrets on every form, and the
report framed through a link. Every check is made through HTTP answers and the store's rows.
"""

from __future__ import annotations

import email
import html
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from fastapi.routing import iter_route_contexts
from gate_flows import write_flow

from conftest import Attacks
from signoff.bootstrap import App, Settings, build_app
from signoff.domain.records import UserRecord
from signoff.domain.states import RunState, TaskRunState
from signoff.server import create_app
from signoff.server.passwords import hash_password
from signoff.spec import load_flow

PASSWORDS = {"alice": "alice-secret-pw", "bob": "bob-secret-pw-2", "root": "root-admin-pw-9"}
ROLES = {"alice": "approver", "bob": "approver", "root": "admin"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
EVIL = "evil.example"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Site:
    """The running server, its App (for looking at rows), and the gate waiting on it."""

    def __init__(self, app: App, url: str) -> None:
        self.app = app
        self.url = url
        self.run_id = ""
        self.gate_id = ""
        self.links: dict[str, dict[str, str]] = {}  # user -> decision -> path of the link

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, timeout=15)

    def state(self) -> TaskRunState:
        gate = self.app.store.get_gate(self.gate_id)
        return self.app.store.get_task_run(gate.task_run_id).state


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    """argon2id hashes of the test passwords, made once (hashing is slow on purpose)."""
    return {name: hash_password(password) for name, password in PASSWORDS.items()}


def _links_in_outbox(app: App, base: str) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for path in sorted((app.settings.resolved_home / "outbox").glob("*.eml")):
        mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(mail, EmailMessage)
        body = mail.get_body(("plain",))
        assert body is not None
        user = str(mail["To"]).split("@")[0]
        for decision, url in re.findall(
            r"Review and (approve|reject):\s+(\S+)", body.get_content()
        ):
            assert url.startswith(base + "/links/")
            found.setdefault(user, {})[decision] = url.removeprefix(base)
    return found


@pytest.fixture
def site(database_url: str, tmp_path: Path, hashes: dict[str, str]) -> Iterator[Site]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = build_app(Settings(home=tmp_path / "home", database_url=database_url, base_url=url))
    for name in PASSWORDS:
        app.store.add_user(
            UserRecord(name, f"{name}@example.org", (ROLES[name],), True, 0.0),
            password_hash=hashes[name],
        )
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
    try:
        served = Site(app, url)
        loaded = load_flow(write_flow(tmp_path / "flow"))
        run = app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by="carol")
        assert app.engine.drive(run.id).state is RunState.WAITING_FOR_APPROVAL
        served.run_id = run.id
        served.gate_id = app.store.gates_of_run(run.id)[0].id
        served.links = _links_in_outbox(app, url)
        assert sorted(served.links) == ["alice", "bob"]
        yield served
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        app.close()


def _login(client: httpx.Client, name: str) -> None:
    page = client.get("/login")
    match = CSRF.search(page.text)
    assert match is not None
    answer = client.post(
        "/login", data={"name": name, "password": PASSWORDS[name], "csrf": match.group(1)}
    )
    assert answer.status_code == 303, answer.text


def _csrf_of(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match is not None
    return match.group(1)


# ------------------------------------------------------- a link in another session
def test_a_link_opened_in_someone_elses_session_is_refused_and_recorded(
    site: Site, attacks: Attacks
) -> None:
    link = site.links["alice"]["approve"]
    with site.client() as browser:
        csrf = _csrf_of(browser, link)  # opened before signing in: the link works as today
        _login(browser, "bob")  # now Bob's browser holds the link's cookie, form and value
        shown = browser.get(link)
        assert shown.status_code == 403
        assert "This link is alice's; you are signed in as bob" in html.unescape(shown.text)
        assert "sign out" in shown.text
        assert 'action="/logout"' in shown.text  # the page offers Bob the way out
        assert 'id="confirm"' not in shown.text
        assert "/links/" not in shown.text
        report = browser.get(link + "/report")
        assert report.status_code == 403
        posted = browser.post(link, data={"csrf": csrf, "comment": "as bob"})
        assert posted.status_code == 403
        assert "This link is alice's; you are signed in as bob" in html.unescape(posted.text)
    assert site.state() is TaskRunState.WAITING_FOR_APPROVAL
    assert site.app.store.list_decisions(site.gate_id) == []
    refused = [e for e in site.app.store.list_audit(site.run_id) if e.event == "link_refused"]
    assert [(e.actor, e.data["link_user"], e.data["method"]) for e in refused] == [
        ("bob", "alice", "GET"),
        ("bob", "alice", "GET"),
        ("bob", "alice", "POST"),
    ]
    with site.client() as alices:
        _login(alices, "alice")  # her own session: the link decides as her
        csrf = _csrf_of(alices, link)
        decided = alices.post(link, data={"csrf": csrf, "comment": "mine"})
        assert decided.status_code == 200, decided.text
    [decision] = site.app.store.list_decisions(site.gate_id)
    assert (decision.actor, decision.channel, decision.comment) == ("alice", "email", "mine")
    tried = (shown, report, posted)
    attacks.record(
        "link opened in another user's signed-in browser (page, report, POST)",
        "link",
        len(tried),
        sum(answer.status_code == 403 for answer in tried),
    )


# ------------------------------------------------------------- the Host header
def _route_paths(site: Site) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, its path parameters filled with real values."""
    eml = sorted((site.app.settings.resolved_home / "outbox").glob("*.eml"))[0].name
    values = {
        "token": site.links["bob"]["reject"].removeprefix("/links/"),
        "gate_id": site.gate_id,
        "run_id": site.run_id,
        "name": "gated",
        "label": "train",
        "file": eml,
    }
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(create_app(site.app).routes):
        path = route.path
        assert path is not None
        for key, value in values.items():
            path = path.replace("{" + key + "}", value)
        assert "{" not in path, f"no test value for a parameter of {route.path}"
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, path))
    # reads first, then forms; signing out ends the session, so it comes last
    return sorted(found, key=lambda mp: (mp[0] != "GET", mp[1] == "/logout", mp[1]))


def _points_away(answer: httpx.Response) -> str | None:
    where = answer.headers.get("location", "")
    if EVIL in where or where.startswith("//") or "://" in where:
        return f"Location {where!r}"
    if EVIL in answer.text:
        return "the body names the Host header's host"
    return None


def test_no_answer_builds_a_url_from_the_host_header(site: Site, attacks: Attacks) -> None:
    forged = {"Host": EVIL, "X-Forwarded-Host": EVIL}
    routes = _route_paths(site)
    assert len(routes) >= 50  # the walk found the app's routes, the web pages' and the API's
    offenders: list[str] = []
    sent = 0
    with site.client() as anonymous, site.client() as root:
        _login(root, "root")
        csrf = _csrf_of(root, "/inbox")
        for client, who in ((anonymous, "anonymous"), (root, "root")):
            for method, path in routes:
                for variant in (path, path + "/") if path != "/" else (path,):
                    data = {"csrf": csrf} if who == "root" and method == "POST" else None
                    answer = client.request(method, variant, headers=forged, data=data)
                    sent += 1
                    if answer.status_code >= 500:
                        offenders.append(f"{who} {method} {variant}: {answer.status_code}")
                    elif why := _points_away(answer):
                        offenders.append(f"{who} {method} {variant}: {why}")
    on_routes, route_offenders = sent, len(offenders)
    for target in (
        f"//{EVIL}",
        f"//{EVIL}/inbox",
        f"https://{EVIL}",
        f"http://{EVIL}/",
        f"/\\{EVIL}",
        f"\\\\{EVIL}",
        f"/\t/{EVIL}",
        f"///{EVIL}",
        f"https:{EVIL}",
        f"javascript://{EVIL}/%0aalert(1)",
        f" //{EVIL}",
    ):
        with site.client() as browser:
            page = browser.get(f"/login?next={quote(target, safe='')}", headers=forged)
            sent += 1
            if why := _points_away(page):
                offenders.append(f"GET /login?next={target!r}: {why}")
            match = CSRF.search(page.text)
            assert match is not None
            answer = browser.post(
                "/login",
                headers=forged,
                data={
                    "name": "alice",
                    "password": PASSWORDS["alice"],
                    "csrf": match.group(1),
                    "next": target,
                },
            )
            sent += 1
            if answer.status_code != 303 or answer.headers["location"] != "/inbox":
                offenders.append(f"POST /login next={target!r}: {answer.headers.get('location')}")
    assert not offenders, "\n".join(offenders)
    assert sent >= 200
    attacks.record(
        "forged Host and X-Forwarded-Host on every route, signed out and in",
        "web",
        on_routes,
        on_routes - route_offenders,
    )
    on_login = sent - on_routes
    attacks.record(
        "off-site next= on the sign-in page and form (//, \\, javascript:, ...)",
        "web",
        on_login,
        on_login - (len(offenders) - route_offenders),
    )


# ------------------------------------------------- non-ASCII, overlong, empty secrets
ODD = ["é", "ü" * 150, "\U0001f600", "x" * 5000, "", " ", "%C3%A9", "é" * 64]


def _odd_value_attack(label: str) -> tuple[str, str]:
    """Which attack (and channel) a request of the odd-values test belongs to, by its label."""
    if label.startswith(("GET link", "GET report", "POST link")):
        return "forged link token: odd payload or signature (non-ASCII, overlong, empty)", "link"
    if label.startswith("link csrf="):
        return "odd CSRF value on a decision link's form", "link"
    if " cookie " in label:
        return "odd bytes in the session, CSRF or sign-in cookie", "web"
    if label.startswith("link comment"):
        return "5,000-character comment on a decision", "link"
    if "overlong" in label:
        return "5,000-character comment on a decision", "web"
    return "odd CSRF value (non-ASCII, overlong, empty) on every form", "web"


def test_odd_csrf_values_and_link_signatures_get_4xx_never_5xx(
    site: Site, attacks: Attacks
) -> None:
    approve = site.links["alice"]["approve"]
    payload, _, signature = approve.removeprefix("/links/").partition(".")
    answers: list[tuple[str, int]] = []
    redirected: list[str] = []  # labels answered with the sign-in redirect

    def check(label: str, answer: httpx.Response, *, redirect: bool = False) -> None:
        """Record the answer; only a sign-in redirect (303 to /login) is not a 4xx here."""
        if redirect and answer.status_code == 303:
            assert answer.headers["location"].startswith("/login?next=")
            redirected.append(label)
            return
        answers.append((label, answer.status_code))

    with site.client() as root, site.client() as anonymous, site.client() as alices:
        _login(root, "root")
        _csrf_of(anonymous, approve)  # the link's CSRF cookie is set, so the value is compared
        for value in ODD:
            form = {"csrf": value}
            with site.client() as fresh:
                fresh.get("/login")
                check(
                    f"/login csrf={value[:9]!r}",
                    fresh.post("/login", data={**form, "name": "alice", "password": "x"}),
                )
            for path, extra in (
                ("/users", {"name": "mallory", "role": "admin", "password": "p" * 20}),
                ("/users/alice/deactivate", {}),
                ("/users/alice/activate", {}),
                ("/flows/gated/runs", {}),
                (f"/runs/{site.run_id}/cancel", {}),
                (f"/gates/{site.gate_id}/decisions", {"decision": "approve"}),
                ("/logout", {}),
            ):
                check(f"{path} csrf={value[:9]!r}", root.post(path, data={**form, **extra}))
            check(f"link csrf={value[:9]!r}", anonymous.post(approve, data=form))
            for token in (
                f"{payload}.{value}",
                f"{value}.{signature}",
                f"{payload}.{signature}{value}",
                f"{value}.{value}",
                value,
            ):
                if token == f"{payload}.{signature}":
                    continue  # the empty value rebuilt the genuine token
                quoted = quote(token, safe=".") or "."
                check(f"GET link {token[:20]!r}", anonymous.get(f"/links/{quoted}"))
                check(f"GET report {token[:20]!r}", anonymous.get(f"/links/{quoted}/report"))
                check(f"POST link {token[:20]!r}", anonymous.post(f"/links/{quoted}", data=form))
        for raw in (b"\xc3\xa9", b"\xff" * 300, b"x" * 3000, b""):
            for cookie in ("signoff_session", "signoff_csrf", "signoff_login"):
                header = {"Cookie": cookie.encode() + b"=" + raw}
                with site.client() as odd:
                    check(
                        f"{cookie} cookie {raw[:9]!r} inbox",
                        odd.get("/inbox", headers=header),
                        redirect=True,
                    )
                    page = odd.get(approve, headers=header)
                    assert page.status_code == 200, page.text
                    match = CSRF.search(page.text)
                    assert match is not None
                    check(
                        f"{cookie} cookie {raw[:9]!r} link POST",
                        odd.post(approve, data={"csrf": "é" + match.group(1)}, headers=header),
                    )
        _login(alices, "alice")
        link_csrf = _csrf_of(alices, approve)
        check(
            "link comment overlong",
            alices.post(approve, data={"csrf": link_csrf, "comment": "é" * 5000}),
        )
        form_csrf = _csrf_of(alices, f"/gates/{site.gate_id}")
        check(
            "decide comment overlong",
            alices.post(
                f"/gates/{site.gate_id}/decisions",
                data={"csrf": form_csrf, "decision": "approve", "comment": "é" * 5000},
            ),
        )
    broken = [f"{label}: {status}" for label, status in answers if not 400 <= status < 500]
    assert not broken, "\n".join(broken)
    assert len(answers) >= len(ODD) * (1 + 7 + 1 + 4 * 3) + 4 * 3 + 2
    assert site.state() is TaskRunState.WAITING_FOR_APPROVAL
    assert site.app.store.list_decisions(site.gate_id) == []
    assert site.app.store.get_user("mallory") is None
    assert site.app.store.get_run(site.run_id).state is RunState.WAITING_FOR_APPROVAL
    with site.client() as alices:  # a control character in a comment is dropped, not a 500
        _login(alices, "alice")
        csrf = _csrf_of(alices, approve)
        answer = alices.post(approve, data={"csrf": csrf, "comment": "fine\x00 é"})
        assert answer.status_code == 200, answer.text
    [decision] = site.app.store.list_decisions(site.gate_id)
    assert (decision.actor, decision.comment) == ("alice", "fine é")
    tries = Counter(_odd_value_attack(label) for label, _ in answers)
    tries.update(_odd_value_attack(label) for label in redirected)
    held = Counter(_odd_value_attack(label) for label, status in answers if 400 <= status < 500)
    held.update(_odd_value_attack(label) for label in redirected)
    for (attack, channel), n in tries.items():
        attacks.record(attack, channel, n, held[attack, channel])


# --------------------------------------------------------------- the report frame
def _csp(answer: httpx.Response) -> dict[str, str]:
    policy_ = answer.headers["content-security-policy"]
    parts = (part.strip().split(" ", 1) for part in policy_.split(";") if part.strip())
    return {part[0]: part[1] if len(part) > 1 else "" for part in parts}


def _frames(page: str) -> list[str]:
    return re.findall(r"<iframe\b[^>]*>", page)


def test_the_report_opened_through_a_link_is_sandboxed_like_the_review_page(
    site: Site, attacks: Attacks
) -> None:
    link = site.links["alice"]["reject"]
    with site.client() as root, site.client() as anonymous:
        _login(root, "root")
        review = root.get(f"/gates/{site.gate_id}")
        review_report = root.get(f"/gates/{site.gate_id}/report")
        page = anonymous.get(link)
        link_report = anonymous.get(link + "/report")
    for answer in (review, review_report, page, link_report):
        assert answer.status_code == 200, answer.text
    assert "sandbox" in _csp(review_report)
    assert _csp(link_report) == _csp(review_report)
    for name in ("x-content-type-options", "cache-control", "referrer-policy"):
        assert link_report.headers.get(name) == review_report.headers.get(name), name
    assert link_report.headers["referrer-policy"] == "no-referrer"
    [review_frame] = _frames(review.text)
    [link_frame] = _frames(page.text)
    for frame in (review_frame, link_frame):
        assert re.search(r"\ssandbox(\s|>|=\"\")", frame), frame
    assert f'src="{site.url}{link}/report"' in link_frame
    for answer in (review, page):  # the pages framing the reports run no script either
        csp = _csp(answer)
        assert csp["script-src"] == "'none'"
        assert csp["frame-ancestors"] == "'none'"
        assert csp["base-uri"] == "'none'"
    attacks.record("script in the review report opened through a link", "link", 1, 1)
