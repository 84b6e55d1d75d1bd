"""Small flows with a gate, written into a test's folder (shared by the gate tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

RESOURCES = Path(__file__).parents[1] / "resources" / "gates"

FLOW = """flow: {name}
params:
  - key: seed
    values: 0
tasks:
  - title: train
    command: python train.py {{{{ seed }}}}
  - title: pick
    type: select
    depends_on: train
    conditions: [{{tag_key: auc}}]
  - title: sign-off
    depends_on: pick
    objective: human_validation
    target: {targets}
{policy}
  - title: deploy
    depends_on: sign-off
    type: deploy
    endpoint: {name}
"""


def write_flow(
    folder: Path, *, name: str = "gated", targets: str = "alice,bob", policy: str = ""
) -> Path:
    """A flow folder: train.py and flow.yaml with the gate policy lines given (indented 4)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(RESOURCES / "train.py", folder / "train.py")
    lines = "\n".join(f"    {line}" for line in policy.strip().splitlines()) if policy else ""
    text = FLOW.format(name=name, targets=targets, policy=lines)
    path = folder / "flow.yaml"
    path.write_text(text.replace("\n\n  - title: deploy", "\n  - title: deploy"))
    return path


def stop_endpoints_of(home: Path) -> None:
    """Kill every endpoint process started for ``home`` (found by /proc, not by the store)."""
    import contextlib
    import os
    import signal

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"signoff.serving" in cmdline and f"SIGNOFF_HOME={home}".encode() in environ:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(proc.name), signal.SIGKILL)
