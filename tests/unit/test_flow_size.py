"""Flow files are read up to 1 MiB: a bigger one is refused after at most limit + 1 bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Attacks
from signoff.errors import SpecError
from signoff.server.api_access import MAX_BODY_BYTES
from signoff.spec import MAX_FLOW_BYTES, load_flow, parse_flow

SMALL = "flow: f\ntasks:\n  - {title: a, command: 'true'}\n"
LIMIT_MESSAGE = "larger than 1048576 bytes (1 MiB), the limit for a flow"
OVERSIZED = "flow over 1 MiB (20 MiB, endless /dev/zero, limit + 1 byte, multi-byte text)"


def _padded(size: int) -> str:
    """A valid flow of exactly ``size`` bytes (comment lines after the tasks)."""
    line = "#" * 1023 + "\n"
    full, rest = divmod(size - len(SMALL), len(line))
    return SMALL + line * full + ("#" * (rest - 1) + "\n" if rest else "")


def test_the_limit_is_one_mebibyte_shared_with_the_api() -> None:
    assert MAX_FLOW_BYTES == 1024 * 1024
    assert MAX_BODY_BYTES == MAX_FLOW_BYTES


def test_a_20_mib_flow_file_is_refused_with_its_name_and_the_limit(
    tmp_path: Path, attacks: Attacks
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(_padded(20 * MAX_FLOW_BYTES))
    with pytest.raises(SpecError) as caught:
        load_flow(path)
    [issue] = caught.value.issues
    assert (issue.file, issue.line, issue.column) == (str(path), 1, 1)
    assert issue.message == f"flow file is {LIMIT_MESSAGE}"
    assert str(caught.value) == f"{path}:1:1: flow file is {LIMIT_MESSAGE}"
    attacks.record(OVERSIZED, "flow file", 1, 1)


def test_a_file_without_end_is_refused_so_reading_stops_at_the_limit(attacks: Attacks) -> None:
    # /dev/zero never ends: reading it whole would never return
    with pytest.raises(SpecError, match=LIMIT_MESSAGE.replace("(", r"\(").replace(")", r"\)")):
        load_flow("/dev/zero")
    attacks.record(OVERSIZED, "flow file", 1, 1)


def test_a_flow_of_exactly_the_limit_loads_and_one_byte_more_does_not(
    tmp_path: Path, attacks: Attacks
) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(_padded(MAX_FLOW_BYTES))
    assert path.stat().st_size == MAX_FLOW_BYTES
    assert load_flow(path).spec.name == "f"
    path.write_text(_padded(MAX_FLOW_BYTES + 1))
    with pytest.raises(SpecError, match="the limit for a flow"):
        load_flow(path)
    attacks.record(OVERSIZED, "flow file", 1, 1)


def test_flow_text_is_held_to_the_same_limit_in_bytes(attacks: Attacks) -> None:
    assert parse_flow(_padded(MAX_FLOW_BYTES)).spec.name == "f"
    refused = 0
    with pytest.raises(SpecError) as caught:
        parse_flow(_padded(MAX_FLOW_BYTES + 1), "<flow_yaml>")
    assert str(caught.value) == f"<flow_yaml>:1:1: flow text is {LIMIT_MESSAGE}"
    refused += 1
    # fewer characters than the limit, more bytes: "€" is three bytes in UTF-8
    euros = SMALL + "# " + "€" * (MAX_FLOW_BYTES // 3) + "\n"
    assert len(euros) < MAX_FLOW_BYTES < len(euros.encode())
    with pytest.raises(SpecError, match="the limit for a flow"):
        parse_flow(euros)
    refused += 1
    attacks.record(OVERSIZED, "flow file", refused, refused)


def test_signoff_validate_refuses_a_20_mib_file_in_one_line(
    tmp_path: Path, attacks: Attacks
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(_padded(20 * MAX_FLOW_BYTES))
    proc = subprocess.run(
        [sys.executable, "-m", "signoff.cli.main", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"SIGNOFF_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert proc.stderr == f"error: {path}:1:1: flow file is {LIMIT_MESSAGE}\n"
    assert "Traceback" not in proc.stdout
    attacks.record("signoff validate on a 20 MiB flow file", "cli", 1, 1)
