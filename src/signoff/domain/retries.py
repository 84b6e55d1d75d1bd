"""Retry policy: after a failed attempt, how long until the next one, or whether to give up.

Pure: the engine passes how many tries the task run has used (attempts lost with a dead
driver do not count) and the task's policy; the delay doubles with each retry.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RetryPolicy", "retry_delay"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A task's retries: how many after the first try, and the first retry's delay."""

    retries: int = 0
    delay: float = 0.0  # seconds before the first retry; each further retry waits twice as long


def retry_delay(tries_used: int, policy: RetryPolicy) -> float | None:
    """Seconds to wait before trying again after ``tries_used`` tries failed; None: give up."""
    if tries_used > policy.retries:
        return None
    if not policy.delay:
        return 0.0
    return float(policy.delay * 2.0 ** (tries_used - 1))
