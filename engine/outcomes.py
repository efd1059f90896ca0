"""What a handler may return: a trigger name, or ``Poll`` to come back later."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Poll:
    """Re-enter the same state after ``after``.

    A poll counts against the state's poll budget and deadline, never against retries.
    """

    after: timedelta = timedelta(seconds=5)

    def __init__(self, after: timedelta | float = 5.0) -> None:
        if isinstance(after, bool) or not isinstance(after, timedelta | int | float):
            raise TypeError(
                f"Poll(after=...) takes seconds (a number) or a timedelta; got {after!r}"
            )
        delay = after if isinstance(after, timedelta) else timedelta(seconds=after)
        if delay < timedelta(0):
            raise ValueError(f"Poll(after=...) must not be negative; got {delay}")
        object.__setattr__(self, "after", delay)


Outcome = str | Poll
