"""Retry policy: how many attempts a state gets and how long to wait between them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from statewright.errors import DefinitionError, PermanentError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with a cap and jitter.

    The wait before attempt ``n + 1`` is ``backoff * multiplier ** (n - 1)``, capped at
    ``max_backoff``, then spread by up to ``jitter`` (a fraction) either way.
    An error matching ``give_up_on`` (or not matching ``retry_on``) fails at once.
    """

    max_attempts: int = 3
    backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 300.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    give_up_on: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise DefinitionError(f"max_attempts must be at least 1; got {self.max_attempts}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise DefinitionError(
                f"backoff and max_backoff must not be negative; got {self.backoff}, "
                f"{self.max_backoff}"
            )
        if self.multiplier < 1:
            raise DefinitionError(f"multiplier must be at least 1; got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise DefinitionError(f"jitter is a fraction from 0 to 1; got {self.jitter}")

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether ``error`` on ``attempt`` (1-based) earns another attempt."""
        if isinstance(error, (PermanentError, *self.give_up_on)):
            return False
        return isinstance(error, self.retry_on) and attempt < self.max_attempts

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        """The wait after failed ``attempt`` (1-based) before the next one."""
        base = min(self.backoff * self.multiplier ** max(attempt - 1, 0), self.max_backoff)
        spread = base * self.jitter
        return timedelta(seconds=max(0.0, base + rng.uniform(-spread, spread)))
