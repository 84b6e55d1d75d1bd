"""Without Ray installed, a task on the Ray executor fails before it starts, saying why.

The run ends (failed, with the reason naming the extra to install): it is not left running
for a lease to expire, and no traceback is printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCKED = """\
import sys
sys.modules["ray"] = None  # as if Ray were not installed
sys.argv = ["signoff", "run", sys.argv[1]]
from signoff.cli.main import main
main()
"""


@pytest.mark.timeout(120)
def test_a_missing_ray_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text('flow: x\ntasks:\n  - title: a\n    command: "true"\n')
    env = {**os.environ, "SIGNOFF_HOME": str(tmp_path / "home"), "SIGNOFF_EXECUTOR": "ray"}
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(flow)],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 1
    reason = "the Ray executor needs Ray: pip install 'signoff[ray]'"
    assert f"a                        failed (resources: {reason})" in done.stdout
    assert "is failed (a failed: resources: " + reason in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
