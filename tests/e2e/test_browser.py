"""The sign-off in a real browser: Chromium (Debian's package) driven by Playwright.

A real SMTP server (aiosmtpd) and the real `signoff server` (uvicorn) run on 127.0.0.1 with a
small gated flow (two approvers, quorum 2). In the browser: the review page is read at
desktop and phone width (the desktop picture is `docs/review-page.png`); a user who is not an
approver sees no decide buttons and a forged POST from their session is refused; one approver
approves on the review page, the other signs in and approves through the link from the
e-mail; the run ends `succeeded` and the endpoint serves the approved version.

Chromium must be installed at /usr/bin/chromium (`.ci/run` installs it); without it these
tests fail: they are never skipped. No browser is ever downloaded.
"""

from __future__ import annotations

import email
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.records import UserRecord
from signoff.domain.states import RunState, TaskRunState
from signoff.server import create_app
from signoff.server.passwords import hash_password
from signoff.server.worker import Worker
from signoff.spec import load_flow

try:
    from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright
except ImportError as exc:  # a clear failure, never a skip
    raise ImportError(
        "the browser tests need playwright: .venv/bin/pip install -e '.[dev]'"
    ) from exc

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOC_SHOT = REPO / "docs" / "review-page.png"
PASSWORDS = {"alice": "alice-browser-pw", "bob": "bob-browser-pw", "carol": "carol-viewer-pw"}
ROLES = {"alice": "approver", "bob": "approver", "carol": "viewer"}
FLOW = """flow: weekly-check
tasks:
  - title: train
    command: python train.py 0
  - title: pick
    type: select
    depends_on: train
    conditions: [{tag_key: auc}]
  - title: sign-off
    depends_on: pick
    objective: human_validation
    target: alice,bob
    quorum: 2
  - title: deploy
    depends_on: sign-off
    type: deploy
    endpoint: weekly-check
"""
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


class Mailbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"

    def link(self, user: str, decision: str) -> str:
        for msg in self.messages:
            if str(msg["To"]).startswith(f"{user}@"):
                body = msg.get_body(("plain",))
                assert body is not None
                found = re.search(rf"Review and {decision}:\s+(\S+)", body.get_content())
                assert found is not None
                return found.group(1)
        raise AssertionError(f"no e-mail reached {user}")


@dataclass
class World:
    """The servers, the run waiting at its gate, and the browser."""

    app: App
    url: str
    mailbox: Mailbox
    run_id: str
    gate_id: str
    browser: Browser

    def signed_in(self, user: str, path: str, viewport: dict[str, int] = DESKTOP) -> Page:
        """A new browser context: open ``path``, get sent to the login page, sign in, return."""
        context: BrowserContext = self.browser.new_context(viewport=viewport)
        page = context.new_page()
        page.goto(self.url + path)
        assert "/login" in page.url
        page.fill("#name", user)
        page.fill("#password", PASSWORDS[user])
        page.click("#sign-in")
        page.wait_for_url(self.url + path)
        return page

    def gate_state(self) -> TaskRunState:
        gate = self.app.store.get_gate(self.gate_id)
        return self.app.store.get_task_run(gate.task_run_id).state


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium is required at {CHROMIUM} for the browser tests "
            "(Debian: apt-get install -y chromium; .ci/run installs it)",
            pytrace=False,
        )
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("browser")
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = build_app(
        Settings(
            home=tmp / "home",
            database_url=f"sqlite:///{tmp / 'signoff.db'}",
            base_url=url,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            mail_from="signoff@example.org",
        )
    )
    for name, password in PASSWORDS.items():
        app.store.add_user(
            UserRecord(name, f"{name}@example.org", (ROLES[name],), True, 0.0),
            password_hash=hash_password(password),
        )
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
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        folder = tmp / "flow"
        folder.mkdir()
        shutil.copy(REPO / "tests" / "resources" / "gates" / "train.py", folder / "train.py")
        (folder / "flow.yaml").write_text(FLOW)
        loaded = load_flow(folder / "flow.yaml")
        run = app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by="dana")
        assert app.engine.drive(run.id).state is RunState.WAITING_FOR_APPROVAL
        gate = app.store.gates_of_run(run.id)[0]
        yield World(app, url, mailbox, run.id, gate.id, browser)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        smtp.stop()
        for ep in app.store.list_endpoints():
            if ep.pid:
                app.endpoints.stop(ep.pid)
        app.close()


# What changes from one run of this test to the next (ids, clocks, digests) is replaced by
# fixed text before the picture is taken, so the picture changes only when the page does.
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})? UTC")
_VARY = re.compile(r'(<(?:span|code) class="vary">)[^<]*(<)')


def _steady(world: World, page: Page) -> None:
    def normalize(route: Route) -> None:
        fixed = iter(["4 min", "3.0 d", "5d0c3b8e61a2f7e4", "9a41c6f0d2b7e835"])

        def vary(match: re.Match[str]) -> str:
            return match.group(1) + next(fixed, "-") + match.group(2)

        response = route.fetch()
        body = response.text().replace(world.run_id, "7c3e9a01b2d4")
        body = _STAMP.sub(
            lambda m: "2025-06-02 03:00:00 UTC" if m.group(1) else "2025-06-02 03:00 UTC", body
        )
        body = _VARY.sub(vary, body)
        route.fulfill(response=response, body=body)

    page.route(re.compile(rf"/gates/{world.gate_id}(/report)?$"), normalize)


def _shoot(page: Page, path: Path) -> bytes:
    """The whole page in one viewport: a sandboxed frame off-screen would not be painted."""
    page.frame_locator("iframe").get_by_text("Candidates").first.wait_for()
    size = page.viewport_size
    assert size is not None
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": height})
    page.frame_locator("iframe").get_by_text("Candidates").first.wait_for()
    shot = page.screenshot(animations="disabled", caret="hide")
    page.set_viewport_size(size)
    path.write_bytes(shot)
    return shot


def test_the_review_page_reads_at_desktop_and_phone_width(world: World, tmp_path: Path) -> None:
    page = world.signed_in("bob", "/inbox")
    page.click(f'a[href="/gates/{world.gate_id}"]')
    page.wait_for_url(f"{world.url}/gates/{world.gate_id}")
    _steady(world, page)
    page.reload()
    assert page.locator("#approve").is_visible()
    assert page.locator("#reject").is_visible()
    assert "0 of 2 approval(s)" in page.locator("#quorum").inner_text()
    report = page.frame_locator("iframe")
    report.get_by_text("Challenger vs champion").first.wait_for()
    desktop = _shoot(page, tmp_path / "review-desktop.png")
    if not DOC_SHOT.is_file() or DOC_SHOT.read_bytes() != desktop:
        DOC_SHOT.write_bytes(desktop)  # only when the page looks different
    page.set_viewport_size(PHONE)
    page.reload()
    _shoot(page, tmp_path / "review-phone.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.locator("#approve").is_visible()
    assert world.gate_state() is TaskRunState.WAITING_FOR_APPROVAL
    page.context.close()


def test_a_non_target_sees_no_buttons_and_a_forged_post_is_refused(world: World) -> None:
    page = world.signed_in("carol", f"/gates/{world.gate_id}")
    assert page.locator("#approve").count() == 0
    assert page.locator("#reject").count() == 0
    assert "not an approver of this gate" in page.locator("#why-not").inner_text()
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    assert csrf
    forged = page.request.post(
        f"{world.url}/gates/{world.gate_id}/decisions",
        form={"csrf": csrf, "decision": "approve", "comment": "sneaky"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "not an approver" in forged.text()
    assert world.gate_state() is TaskRunState.WAITING_FOR_APPROVAL
    refused = [d for d in world.app.store.list_decisions(world.gate_id) if d.actor == "carol"]
    assert [(d.decision, d.channel) for d in refused] == [("refused", "web")]
    page.context.close()


def test_approvers_decide_in_the_browser_and_the_endpoint_serves_the_version(
    world: World,
) -> None:
    bob = world.signed_in("bob", "/inbox")
    bob.click(f'a[href="/gates/{world.gate_id}"]')
    bob.fill("#comment", "metrics hold up")
    bob.click("#approve")
    bob.wait_for_url(f"{world.url}/gates/{world.gate_id}")
    assert "1 of 2 approval(s)" in bob.locator("#quorum").inner_text()
    assert "You approved this gate" in bob.locator("#why-not").inner_text()

    alice = world.signed_in("alice", "/inbox")
    alice.goto(world.mailbox.link("alice", "approve"))
    alice.frame_locator("iframe").get_by_text("Candidates").first.wait_for()
    alice.fill("#comment", "agreed")
    alice.click("#confirm")
    alice.get_by_text("You approved run").wait_for()
    assert world.gate_state() is TaskRunState.APPROVED

    deadline = time.monotonic() + 60
    while world.app.store.get_run(world.run_id).state is not RunState.SUCCEEDED:
        assert time.monotonic() < deadline, world.app.store.get_run(world.run_id)
        time.sleep(0.2)
    gate = world.app.store.get_gate(world.gate_id)
    assert gate.model_version_id is not None
    label = world.app.store.get_model_version(gate.model_version_id).label
    endpoint = world.app.store.get_endpoint("weekly-check")
    assert endpoint is not None
    served = httpx.get(f"{endpoint.url}/version", timeout=10, trust_env=False)
    assert served.status_code == 200
    assert served.json()["model_version"] == label

    alice.goto(f"{world.url}/gates/{world.gate_id}")
    assert "2 of 2 approval(s)" in alice.locator("#quorum").inner_text()
    channels = {
        d.actor: d.channel
        for d in world.app.store.list_decisions(world.gate_id)
        if d.decision == "approve"
    }
    assert channels == {"bob": "web", "alice": "email"}
    alice.goto(f"{world.url}/runs/{world.run_id}")
    states = alice.locator("g.node").evaluate_all("nodes => nodes.map(n => n.dataset.state)")
    assert states == ["succeeded", "succeeded", "approved", "succeeded"]
    bob.context.close()
    alice.context.close()
