"""What a local machine can give task runs (CPU slots, GPU ids, memory), and who holds what.

A task run is admitted when its CPU slots, its whole GPUs and its memory are all free. GPUs
are handed out by id, each to one task run at a time. Memory is a budget: the memory of the
running task runs, summed, stays within the machine's total (a task run that names no memory
counts as none). A request the machine can never meet, more GPUs or more memory than it has,
is refused with the reason; CPU is not refused: a task asking more cores than there are slots
takes all of them (a command still runs on fewer cores, where it cannot run without its GPU).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from signoff.domain.specs import Resources
from signoff.executors.gpus import Gpus

__all__ = ["Grant", "ResourcePool"]


@dataclass(frozen=True, slots=True)
class Grant:
    """What one running task run holds."""

    slots: int
    gpus: tuple[str, ...] = ()
    memory_mb: int = 0


class ResourcePool:
    """The machine's slots, GPU ids and memory; thread-safe (watchers release from threads)."""

    def __init__(self, slots: int, gpus: Gpus, memory_mb: int) -> None:
        self.slots = max(1, slots)
        self.gpus = gpus
        self.memory_mb = memory_mb
        self._lock = threading.Lock()
        self._held: dict[str, Grant] = {}

    def slots_needed(self, cpu: float) -> int:
        """Slots for ``cpu`` cores: rounded up, at least one, at most all of them."""
        return min(self.slots, max(1, math.ceil(cpu)))

    def refusal(self, resources: Resources) -> str | None:
        """Why a task run asking ``resources`` can never run on this machine; None if it can."""
        reasons = []
        gpus = _whole(resources.gpu)
        if gpus > len(self.gpus.ids):
            have = len(self.gpus.ids)
            reasons.append(
                f"asks for {_count(gpus, 'GPU')}; this machine has {have} ({self.gpus.source})"
            )
        memory = _memory(resources)
        if memory > self.memory_mb:
            reasons.append(f"asks for {memory} MB of memory; this machine has {self.memory_mb} MB")
        return "; ".join(reasons) or None

    def fits(self, resources: Resources) -> bool:
        """Whether what ``resources`` asks is free now (never, for a refused request)."""
        if self.refusal(resources) is not None:
            return False
        with self._lock:
            held = self._held.values()
            free_slots = self.slots - sum(g.slots for g in held)
            free_gpus = len(self.gpus.ids) - sum(len(g.gpus) for g in held)
            free_memory = self.memory_mb - sum(g.memory_mb for g in held)
        return (
            free_slots >= self.slots_needed(resources.cpu)
            and free_gpus >= _whole(resources.gpu)
            and free_memory >= _memory(resources)
        )

    def take(self, task_run_id: str, resources: Resources) -> Grant | str | None:
        """Hold what ``resources`` asks for ``task_run_id``, all of it or nothing.

        The reason when it can never be had (refused); None when it is not free now (other
        task runs hold it: try again once they end). Checked and taken under one lock, so
        the executors of several runs sharing the pool never overcommit it.
        """
        refused = self.refusal(resources)
        if refused is not None:
            return refused
        need = _whole(resources.gpu)
        slots, memory = self.slots_needed(resources.cpu), _memory(resources)
        with self._lock:
            held = self._held.values()
            busy = {i for g in held for i in g.gpus}
            free = [i for i in self.gpus.ids if i not in busy]
            if (
                len(free) < need
                or self.slots - sum(g.slots for g in held) < slots
                or self.memory_mb - sum(g.memory_mb for g in held) < memory
            ):
                return None
            grant = Grant(slots, tuple(free[:need]), memory)
            self._held[task_run_id] = grant
        return grant

    def release(self, task_run_id: str) -> None:
        """Give back what ``task_run_id`` holds (nothing if it holds nothing)."""
        with self._lock:
            self._held.pop(task_run_id, None)

    def free_slots(self) -> int:
        with self._lock:
            return self.slots - sum(g.slots for g in self._held.values())

    def holders(self) -> int:
        with self._lock:
            return len(self._held)


def _whole(gpu: float) -> int:
    """Whole GPUs for a request: a fraction is rounded up (GPUs are not shared)."""
    return max(0, math.ceil(gpu))


def _memory(resources: Resources) -> int:
    return resources.memory_mb or 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
