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
