"""Every attack the test suite tries, counted: a Markdown table for docs/security.md.

    .venv/bin/python benchmarks/attacks.py [--quick] [--out FILE]

Runs pytest on the attack tests (``FILES``; ``--quick``: the unit ones only) with
``SIGNOFF_ATTACK_REPORT`` set, so each test writes what it tried through the ``attacks``
fixture of ``tests/conftest.py``: one row per kind of attack, with how many attempts it made
and how many were answered as they must be (refused, a 4xx, detected, no marker file). A row
counts only if its test passed. The rows are summed per attack and channel, over the
parametrised cases and both database backends, and printed as a table grouped by channel.

The whole run takes as long as those test files: several minutes, and about 25 on a shared
2-core machine (the integration tests run on SQLite and on PostgreSQL, start real servers and
processes, and the API fuzzing alone sends about 850 requests per backend); ``--quick``, the
unit files, takes under a minute. It needs the PostgreSQL server the integration tests need.
It fails, and prints no table, when pytest fails, when no row was recorded, or when a passing
test recorded fewer held than tries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNIT = [
    "tests/unit/test_model_file_safety.py",
    "tests/unit/test_sklearn_estimators.py",
    "tests/unit/test_endpoint_names.py",
    "tests/unit/test_flow_size.py",
]
INTEGRATION = [
    "tests/integration/test_web_attacks.py",
    "tests/integration/test_gate_email.py",
    "tests/integration/test_api_fuzz.py",
    "tests/integration/test_endpoint_name_channels.py",
    "tests/integration/test_home_modes.py",
    "tests/integration/test_cli_auth.py",
    "tests/integration/test_gate_deadline.py",
    "tests/integration/test_audit_tamper.py",
    "tests/integration/test_crash_builtins.py",
    "tests/integration/test_crash.py",
    "tests/integration/test_cli_endpoint_states.py",
    "tests/integration/test_web_auth.py",
    "tests/integration/test_gate_policy.py",
    "tests/integration/test_break_glass.py",
]
FILES = UNIT + INTEGRATION
CHANNELS = (
    "cli", "api", "web", "link", "webhook", "model file", "flow file", "store", "files", "process",
)  # fmt: skip
REPORT_ENV = "SIGNOFF_ATTACK_REPORT"


@dataclass
class Attack:
    """One attack summed over every test row that names it."""

    attack: str
    channel: str
    backends: set[str] = field(default_factory=set)
    tries: int = 0
    held: int = 0


def run_pytest(files: list[str], report: Path) -> tuple[int, float]:
    """Run pytest on ``files`` (its output goes to stderr); its exit code and the seconds."""
    command = [sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider"]
    env = {**os.environ, REPORT_ENV: str(report)}
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, stdout=sys.stderr, check=False)
    return done.returncode, time.perf_counter() - t0


def read_rows(report: Path) -> list[dict[str, object]]:
    """The rows the tests wrote, one JSON object a line."""
    if not report.exists():
        return []
    lines = report.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def summed(rows: Iterable[dict[str, object]]) -> list[Attack]:
    """Rows summed per (attack, channel), ordered by channel, then by attack."""
    found: dict[tuple[str, str], Attack] = {}
    for row in rows:
        attack, channel = str(row["attack"]), str(row["channel"])
        entry = found.setdefault((attack, channel), Attack(attack, channel))
        if row.get("backend"):
            entry.backends.add(str(row["backend"]))
        entry.tries += int(str(row["tries"]))
        entry.held += int(str(row["held"]))

    def order(a: Attack) -> tuple[int, str, str]:
        rank = CHANNELS.index(a.channel) if a.channel in CHANNELS else len(CHANNELS)
        return rank, a.channel, a.attack.lower()

    return sorted(found.values(), key=order)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(attacks: list[Attack]) -> list[str]:
    """The Markdown table: attack | channel | backends | tries | held, and a total line."""
    lines = ["| attack | channel | backends | tries | held |", "| --- | --- | --- | ---: | ---: |"]
    for a in attacks:
        backends = ", ".join(b for b in ("sqlite", "postgres") if b in a.backends) or "-"
        lines.append(f"| {_cell(a.attack)} | {a.channel} | {backends} | {a.tries:,} | {a.held:,} |")
    tries = sum(a.tries for a in attacks)
    held = sum(a.held for a in attacks)
    lines.append(f"| **total: {len(attacks)} attacks** | | | **{tries:,}** | **{held:,}** |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the unit tests only (seconds)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    files = UNIT if args.quick else FILES
    with tempfile.TemporaryDirectory(prefix="signoff-attacks-") as tmp:
        report = Path(tmp) / "attacks.jsonl"
        code, seconds = run_pytest(files, report)
        rows = read_rows(report)
    if code != 0:
        sys.exit(f"pytest failed (exit {code}): no table; the attack tests must pass first")
    if not rows:
        sys.exit(f"pytest passed but no test recorded an attack (is {REPORT_ENV} read?)")
    attacks = summed(rows)
    short = [a for a in attacks if a.held != a.tries]
    if short:
        listed = "; ".join(f"{a.attack} ({a.held} of {a.tries})" for a in short)
        sys.exit(f"passing tests recorded attempts that did not hold: {listed}")
    recorded = {str(row["test"]).split("::", 1)[0] for row in rows}
    silent = [f for f in files if f not in recorded]
    invoked = "benchmarks/attacks.py" + (" --quick" if args.quick else "")
    tests = len({str(row["test"]) for row in rows})
    out = [
        f"Produced by `.venv/bin/python {invoked}` on {dt.date.today().isoformat()}: "
        f"`pytest -q -p no:cacheprovider` on {len(files)} test files ({seconds:.0f} s), "
        f"{len(rows)} rows from {tests} passing tests, summed per attack.",
        "",
        *table(attacks),
    ]
    if silent:
        out += ["", f"Files that recorded no attack: {', '.join(silent)}."]
    text = "\n".join(out) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
