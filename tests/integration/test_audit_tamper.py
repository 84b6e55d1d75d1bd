"""Tampering with the audit log or the decisions table, as someone with database access would.

Each attack edits the real database (SQLite and PostgreSQL) behind signoff's back; ``signoff
audit verify`` must name what changed. The attacker here can write SQL but does not hold the
audit key (it lives in the home folder, not in the database), except where a test says so:
then only the checkpoints kept outside the database can show the rewrite.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from gate_flows import write_flow

from conftest import Attacks
from signoff.bootstrap import App, Settings, build_app
from signoff.domain.audit import GENESIS, KEYED, LEGACY, entry_hash
from signoff.engine.engine import new_id
from signoff.errors import NotATargetError
from signoff.gates.decide import decide
from signoff.spec import load_flow


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        self.t += 0.5
        return self.t


def _settings(tmp_path: Path, database_url: str, **extra: Any) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url, slots=2, **extra)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    a = build_app(_settings(tmp_path, database_url))
    clock = FakeClock()
    a.engine.clock = clock
    a.gates.clock = clock
    try:
        yield a
    finally:
        a.close()


def _gated_run(app: App, folder: Path) -> str:
    loaded = load_flow(write_flow(folder, targets="alice,bob", policy="quorum: 2"))
    run = app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by="carol")
    run_id = app.engine.drive(run.id).id
    with pytest.raises(NotATargetError):
        _decide(app, run_id, "mallory")
    _decide(app, run_id, "alice")
    return run_id


def _decide(app: App, run_id: str, who: str) -> None:
    decide(
        app.store,
        app.engine.clock,
        run_id,
        actor=who,
        approve=True,
        comment=f"{who} looked",
        channel="cli",
        new_id=new_id,
        auth="password",
    )


def _sql(app: App, statement: str, **params: Any) -> None:
    with app.database.begin() as conn:
        conn.execute(sa.text(statement), params)


def _rows(app: App) -> list[dict[str, Any]]:
    with app.database.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM audit_log ORDER BY seq")).mappings().all()
    out = []
    for r in rows:
        row = dict(r)
        if isinstance(row["data"], str):
            row["data"] = json.loads(row["data"])
        out.append(row)
    return out


def _rechain(app: App, start: int, key: bytes | None, scheme: str) -> None:
    """Rewrite every entry from ``start`` on so that each links to the one before it."""
    rows = _rows(app)
    prev = GENESIS if start == 1 else rows[start - 2]["hash"]
    for row in rows[start - 1 :]:
        digest = entry_hash(
            prev,
            key=key,
            seq=row["seq"],
            at=row["at"],
            event=row["event"],
            run_id=row["run_id"],
            gate_id=row["gate_id"],
            actor=row["actor"],
            data=row["data"],
        )
        _sql(
            app,
            "UPDATE audit_log SET prev_hash = :p, hash = :h, scheme = :s WHERE seq = :q",
            p=prev,
            h=digest,
            s=scheme,
            q=row["seq"],
        )
        prev = digest


VERIFIED: list[bool] = []
"""Whether each verification a test ran through ``_reasons`` (after tampering) found a break."""


@pytest.fixture(autouse=True)
def _no_verification_yet() -> None:
    VERIFIED.clear()


def _reasons(app: App) -> list[str]:
    reasons = [b.reason for b in app.verify_audit().breaks]
    VERIFIED.append(bool(reasons))
    return reasons


def _record(attacks: Attacks, attack: str) -> None:
    """One row for the tampering steps of this test, each verified through ``_reasons``."""
    attacks.record(attack, "store", len(VERIFIED), sum(VERIFIED))


def test_an_untouched_log_verifies_with_checkpoints_and_decisions(app: App, tmp_path: Path) -> None:
    _gated_run(app, tmp_path / "f")
    report = app.verify_audit()
    assert report.intact, report.breaks
    assert report.entries >= 4
    assert report.checkpoints_verified == report.checkpoints >= 2
    assert report.decisions == report.decisions_matched == 2  # mallory's refusal, alice
    assert f"{report.entries} entries, chain and {report.checkpoints} checkpoints verified" in (
        report.summary()
    )
    assert "2 of 2 decisions matched" in report.summary()
    decided = [e for e in app.store.list_audit() if e.event == "decided"]
    assert decided[0].data["auth"] == "password"
    assert decided[0].scheme == KEYED


def test_deleting_the_last_entries_is_detected(app: App, tmp_path: Path, attacks: Attacks) -> None:
    _gated_run(app, tmp_path / "f")
    last = _rows(app)[-1]["seq"]
    _sql(app, "DELETE FROM audit_log WHERE seq = :s", s=last)
    assert any("entries were deleted" in r for r in _reasons(app))
    _sql(app, "DELETE FROM audit_log WHERE seq >= :s", s=last - 2)
    assert any("entries were deleted" in r for r in _reasons(app))
    _record(attacks, "last audit entries deleted (one, then three)")


def test_rewriting_an_entry_and_recomputing_the_chain_is_detected(
    app: App, tmp_path: Path, attacks: Attacks
) -> None:
    _gated_run(app, tmp_path / "f")
    victim = next(r for r in _rows(app) if r["event"] == "decided")
    data = {**victim["data"], "comment": "rewritten"}
    _sql(
        app,
        "UPDATE audit_log SET actor = 'bob', data = :d WHERE seq = :s",
        d=json.dumps(data),
        s=victim["seq"],
    )
    _rechain(app, victim["seq"], key=None, scheme=KEYED)  # plain sha256: the old chain's rule
    reasons = _reasons(app)
    assert any("MAC does not match" in r for r in reasons)
    _rechain(app, victim["seq"], key=b"a guess at the key, 32 bytes lng", scheme=KEYED)
    assert any("MAC does not match" in r for r in _reasons(app))
    _rechain(app, 1, key=None, scheme=LEGACY)  # pass the whole log off as pre-key entries
    assert any("differs from its checkpoint" in r for r in _reasons(app))
    _record(attacks, "audit entry rewritten, chain recomputed without the key (3 ways)")


def test_a_rewrite_by_someone_holding_the_key_shows_against_the_checkpoints(
    app: App, tmp_path: Path, attacks: Attacks
) -> None:
    _gated_run(app, tmp_path / "f")
    victim = next(r for r in _rows(app) if r["event"] == "decided")
    data = {**victim["data"], "comment": "rewritten with the key"}
    _sql(app, "UPDATE audit_log SET data = :d WHERE seq = :s", d=json.dumps(data), s=victim["seq"])
    _rechain(app, victim["seq"], key=app.audit_key, scheme=KEYED)
    reasons = _reasons(app)
    assert any("differs from its checkpoint: the log was rewritten" in r for r in reasons)
    assert any("differs from it (comment)" in r for r in reasons)  # and from the decision row
    _record(attacks, "audit entry rewritten by someone holding the audit key")


def test_an_appended_forged_entry_is_detected(app: App, tmp_path: Path, attacks: Attacks) -> None:
    run_id = _gated_run(app, tmp_path / "f")
    head = _rows(app)[-1]
    data = {"decision": "approve", "comment": "forged", "channel": "cli"}
    for scheme, key in ((KEYED, None), (LEGACY, None)):
        forged = entry_hash(
            head["hash"],
            key=key,
            seq=head["seq"] + 1,
            at=head["at"] + 1,
            event="decided",
            run_id=run_id,
            gate_id=head["gate_id"],
            actor="bob",
            data=data,
        )
        _sql(
            app,
            "INSERT INTO audit_log (seq, at, event, run_id, gate_id, actor, data, prev_hash, "
            "hash, scheme) VALUES (:q, :a, 'decided', :r, :g, 'bob', :d, :p, :h, :s)",
            q=head["seq"] + 1,
            a=head["at"] + 1,
            r=run_id,
            g=head["gate_id"],
            d=json.dumps(data),
            p=head["hash"],
            h=forged,
            s=scheme,
        )
        reasons = _reasons(app)
        expected = "MAC does not match" if scheme == KEYED else "unkeyed entry after keyed ones"
        assert any(expected in r for r in reasons), reasons
        assert any("missing from the table" in r for r in reasons)  # no decision row for it
        _sql(app, "DELETE FROM audit_log WHERE seq = :q", q=head["seq"] + 1)
    assert app.verify_audit().intact
    _record(attacks, "forged decision appended to the audit log (keyed, unkeyed)")


def test_editing_deleting_or_inserting_decision_rows_is_detected(
    app: App, tmp_path: Path, attacks: Attacks
) -> None:
    _gated_run(app, tmp_path / "f")
    gate_id = app.store.all_decisions()[0].gate_id
    _sql(app, "UPDATE decisions SET comment = 'edited' WHERE actor = 'alice'")
    assert any("differs from it (comment)" in r for r in _reasons(app))
    _sql(app, "UPDATE decisions SET comment = 'alice looked', actor = 'bob' WHERE actor = 'alice'")
    assert any("differs from it (actor)" in r for r in _reasons(app))
    _sql(app, "UPDATE decisions SET actor = 'alice' WHERE actor = 'bob'")
    assert app.verify_audit().intact
    _sql(
        app,
        "INSERT INTO decisions (id, gate_id, actor, decision, comment, channel, at) "
        "VALUES ('f0f0f0f0f0f0', :g, 'bob', 'approve', 'forged', 'cli', 1)",
        g=gate_id,
    )
    assert any("has no audit entry" in r for r in _reasons(app))
    _sql(app, "DELETE FROM decisions WHERE id = 'f0f0f0f0f0f0'")
    _sql(app, "DELETE FROM decisions WHERE actor = 'alice'")
    assert any("missing from the decisions table" in r for r in _reasons(app))
    _record(attacks, "decision rows edited, inserted or deleted")


def test_a_forged_or_torn_checkpoint_line(app: App, tmp_path: Path, attacks: Attacks) -> None:
    _gated_run(app, tmp_path / "f")
    path = app.checkpoints.path
    head = _rows(app)[-1]
    fake = {"seq": head["seq"] + 5, "head": "0" * 64, "at": 1.0, "mac": "0" * 64}
    with path.open("a") as f:
        f.write(json.dumps(fake) + "\n")
    assert any("checkpoint is forged" in r for r in _reasons(app))
    forged = (len(VERIFIED), sum(VERIFIED))  # the torn line after it is a crash, not an attack
    lines = path.read_text().splitlines()[:-1]
    path.write_text("\n".join(lines) + '\n{"seq": 3, "he')  # a crash mid-line
    report = app.verify_audit()
    assert report.intact
    assert report.unreadable_checkpoints == 1
    attacks.record("forged line appended to the audit checkpoints file", "files", *forged)


def test_key_and_checkpoints_are_private_files_outside_the_database(
    app: App, tmp_path: Path, attacks: Attacks
) -> None:
    _gated_run(app, tmp_path / "f")
    home = tmp_path / "home"
    private = (home / "audit.key", app.checkpoints.path)
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(app.checkpoints.path.parent.stat().st_mode) & 0o077 == 0
    key = (home / "audit.key").read_bytes().strip()
    with app.database.connect() as conn:
        dumped = " ".join(
            str(v)
            for table in ("audit_log", "decisions", "gates")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")).all()
            for v in row
        )
    assert key.decode() not in dumped
    attacks.record(
        "audit key and checkpoints read by another local user",
        "files",
        len(private),
        sum(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in private),
    )


class _Receiver(BaseHTTPRequestHandler):
    got: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_checkpoints_pushed_to_a_url_prove_a_rewrite_even_with_local_files_gone(
    database_url: str, tmp_path: Path, attacks: Attacks
) -> None:
    _Receiver.got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/anchor"
    app = build_app(_settings(tmp_path, database_url, audit_anchor_url=url))
    try:
        _gated_run(app, tmp_path / "f")
        assert _Receiver.got
        assert all(set(cp) == {"seq", "head", "at", "mac"} for cp in _Receiver.got)
        remote = tmp_path / "remote-checkpoints.jsonl"
        remote.write_text("".join(json.dumps(cp) + "\n" for cp in _Receiver.got))
        app.checkpoints.path.unlink()  # the insider removes the local anchor too
        victim = next(r for r in _rows(app) if r["event"] == "decided")
        _sql(app, "UPDATE audit_log SET actor = 'bob' WHERE seq = :s", s=victim["seq"])
        _sql(app, "UPDATE decisions SET actor = 'bob' WHERE actor = 'alice'")
        _rechain(app, victim["seq"], key=app.audit_key, scheme=KEYED)
        assert app.verify_audit().intact  # nothing local is left to compare with...
        report = app.verify_audit(remote)  # ...but the pushed copy is
        assert any("the log was rewritten" in b.reason for b in report.breaks)
        attacks.record(
            "log rewritten with the key and the local checkpoints deleted", "store", 1, 1
        )
    finally:
        app.close()
        server.shutdown()


def test_the_cli_says_what_it_verified_and_fails_on_a_break(
    database_url: str, tmp_path: Path, attacks: Attacks
) -> None:
    app = build_app(_settings(tmp_path, database_url))
    try:
        _gated_run(app, tmp_path / "f")
    finally:
        app.close()
    env = {**os.environ, "SIGNOFF_HOME": str(tmp_path / "home")}
    env["SIGNOFF_DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "signoff.cli.main", "audit", "verify"]
    ok = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "audit log intact:" in ok.stdout
    assert "checkpoints verified, 2 of 2 decisions matched" in ok.stdout
    engine = sa.create_engine(_sync_url(database_url))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)"))
    engine.dispose()
    bad = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "entries were deleted" in bad.stderr
    assert "the audit log was tampered with" in bad.stderr
    as_json = subprocess.run(
        [*command, "--json"], env=env, capture_output=True, text=True, check=False
    )
    report = json.loads(as_json.stdout)
    assert report["intact"] is False
    assert (report["decisions"], report["decisions_matched"]) == (2, 1)  # alice's lost its entry
    assert any("has no audit entry" in b["reason"] for b in report["breaks"])
    attacks.record("signoff audit verify after the last entry was deleted", "cli", 1, 1)


def _sync_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def test_the_chain_needs_the_key_to_verify() -> None:
    # The same content under two keys gives unrelated MACs; without a key, plain sha256.
    fields: dict[str, Any] = {
        "seq": 1,
        "at": 1.0,
        "event": "decided",
        "run_id": "r",
        "gate_id": "g",
        "actor": "alice",
        "data": {},
    }
    one = entry_hash(GENESIS, key=b"k" * 32, **fields)
    two = entry_hash(GENESIS, key=b"j" * 32, **fields)
    plain = entry_hash(GENESIS, key=None, **fields)
    assert len({one, two, plain}) == 3
    assert plain == hashlib.sha256((GENESIS + _canonical(fields)).encode()).hexdigest()


def _canonical(fields: dict[str, Any]) -> str:
    return json.dumps(
        {**fields, "at": repr(float(fields["at"]))},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
