"""Which GPUs this machine offers to task runs: from ``SIGNOFF_GPUS``, else ``nvidia-smi -L``.

``SIGNOFF_GPUS`` is a count (``2``: ids ``0`` and ``1``) or a comma list of ids (``0,2``; one
id alone is written with a comma: ``3,``). Ids are what ``CUDA_VISIBLE_DEVICES`` takes: indexes,
or ``GPU-…`` UUIDs. Without the setting, the GPUs are those ``nvidia-smi -L`` lists; none when
it is not installed or fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["GPU_SETTING", "Gpus", "discover_gpus", "parse_gpus"]

GPU_SETTING = "SIGNOFF_GPUS"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:.-]*")
_LISTED = re.compile(r"^GPU (\d+):", re.MULTILINE)  # nvidia-smi -L: "GPU 0: <name> (UUID: …)"
_SMI_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Gpus:
    """The GPU ids task runs may be given, and where they were found (named in refusals)."""

    ids: tuple[str, ...] = ()
    source: str = f"{GPU_SETTING} or nvidia-smi"


def parse_gpus(text: str) -> tuple[str, ...]:
    """The ids a ``SIGNOFF_GPUS`` value names; ``ValueError`` with the reason if it is bad."""
    text = text.strip()
    if not text:
        return ()
    if "," not in text:
        if not text.isdigit():
            raise ValueError(
                f"{GPU_SETTING} must be a count (2) or a comma list of GPU ids (0,2), "
                f"got {text!r} (one id alone: {text!r} followed by a comma)"
            )
        return tuple(str(i) for i in range(int(text)))
    ids = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [i for i in ids if not _ID.fullmatch(i)]
    if bad:
        raise ValueError(f"{GPU_SETTING}: not a GPU id: {', '.join(map(repr, bad))}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{GPU_SETTING} names a GPU twice: {text!r}")
    return ids


def discover_gpus(setting: str | None, path: str | None = None) -> Gpus:
    """The GPUs of this machine: the setting when given, else what ``nvidia-smi -L`` lists.

    ``path`` is the ``PATH`` to find ``nvidia-smi`` on (the process's own when None).
    """
    if setting is not None:
        return Gpus(parse_gpus(setting), GPU_SETTING)
    smi = shutil.which("nvidia-smi", path=path)
    if smi is None:
        return Gpus()
    try:
        listed = subprocess.run(
            [smi, "-L"], capture_output=True, text=True, timeout=_SMI_TIMEOUT, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return Gpus()
    return Gpus(tuple(_LISTED.findall(listed)), "nvidia-smi")
