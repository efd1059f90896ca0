"""Retry policy: attempts, exponential backoff with a cap, jitter, and error filters."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from statewright import DefinitionError, PermanentError, RetryPolicy


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    """Waits double per attempt and stop at max_backoff when there is no jitter."""
    policy = RetryPolicy(max_attempts=10, backoff=1, multiplier=2, max_backoff=5, jitter=0)
    rng = random.Random(0)
    waits = [policy.delay(n, rng).total_seconds() for n in range(1, 6)]
    assert waits == [1, 2, 4, 5, 5]


def test_jitter_stays_within_its_fraction() -> None:
    """Jitter spreads a wait by at most its fraction either way."""
    policy = RetryPolicy(backoff=10, jitter=0.2)
    rng = random.Random(3)
    waits = {policy.delay(1, rng) for _ in range(200)}
    assert min(waits) >= timedelta(seconds=8)
    assert max(waits) <= timedelta(seconds=12)
    assert len(waits) > 100


def test_attempts_are_bounded() -> None:
    """An error earns a retry only while attempts remain."""
    policy = RetryPolicy(max_attempts=3)
    error = ValueError("x")
    assert policy.should_retry(error, 1)
    assert policy.should_retry(error, 2)
    assert not policy.should_retry(error, 3)


def test_error_filters_decide_retry() -> None:
    """retry_on limits what is retried; give_up_on and PermanentError never are."""
    policy = RetryPolicy(
        max_attempts=5, retry_on=(ConnectionError,), give_up_on=(ConnectionResetError,)
    )
    assert policy.should_retry(ConnectionError(), 1)
    assert not policy.should_retry(ValueError(), 1)
    assert not policy.should_retry(ConnectionResetError(), 1)
    assert not RetryPolicy().should_retry(PermanentError("no"), 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1; got 0"),
        ({"backoff": -1}, "must not be negative"),
        ({"multiplier": 0.5}, "multiplier must be at least 1"),
        ({"jitter": 2}, "jitter is a fraction from 0 to 1; got 2"),
    ],
)
def test_bad_policies_are_refused(options: dict[str, float], message: str) -> None:
    """Nonsense policies fail at declaration with the bad value."""
    with pytest.raises(DefinitionError, match=message):
        RetryPolicy(**options)  # type: ignore[arg-type]
