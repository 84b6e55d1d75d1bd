"""The retry decision: delays double, and the policy's retries bound the tries."""

from __future__ import annotations

import pytest

from signoff.domain.retries import RetryPolicy, retry_delay


def test_no_retries_gives_up_after_the_first_try() -> None:
    assert retry_delay(1, RetryPolicy()) is None


def test_retries_without_a_delay_start_at_once() -> None:
    policy = RetryPolicy(retries=2)
    assert [retry_delay(n, policy) for n in (1, 2, 3)] == [0.0, 0.0, None]


@pytest.mark.parametrize(("tries", "delay"), [(1, 1.5), (2, 3.0), (3, 6.0), (4, None)])
def test_the_delay_doubles_with_each_retry(tries: int, delay: float | None) -> None:
    assert retry_delay(tries, RetryPolicy(retries=3, delay=1.5)) == delay
