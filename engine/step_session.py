"""The session a handler writes through, and what the handler must leave to the engine.

A step's domain writes commit together with its transition, in one transaction the
engine commits after re-checking the fencing token. A handler that commits, rolls
back or closes that session itself would land its writes without the transition (a
later claim, abort or redrive then applies them again) or drop them silently. While
a handler runs, its session refuses all three, and the step fails at once with a
reason that says what the handler must not do, even if the handler caught the refusal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from statewright.errors import PermanentError

#: ``Session.info`` keys: the state whose handler is running, and what it tried.
_RUNNING = "statewright.handler_running"
_MISUSED = "statewright.handler_misused"


class SessionMisuseError(PermanentError):
    """A handler committed, rolled back or closed its step's session."""

    def __init__(self, state: str, call: str) -> None:
        super().__init__(
            f"the handler of state {state!r} called ctx.session.{call}(); a handler must not "
            "commit, roll back or close its step's session: the engine commits the step's "
            "writes together with its transition, or none of them (for a part that may fail "
            "on its own, use a savepoint: `with ctx.session.begin_nested(): ...`)"
        )
        self.state = state
        self.call = call


class StepSession(Session):
    """A ``Session`` that refuses ``commit``, ``rollback`` and ``close`` while its
    step's handler runs (see ``handler_running``)."""

    def commit(self) -> None:
        self._refuse_in_handler("commit")
        super().commit()

    def rollback(self) -> None:
        self._refuse_in_handler("rollback")
        super().rollback()

    def close(self) -> None:
        self._refuse_in_handler("close")
        super().close()

    def _refuse_in_handler(self, call: str) -> None:
        state = self.info.get(_RUNNING)
        if state is None:
            return
        self.info.setdefault(_MISUSED, call)
        raise SessionMisuseError(state, call)


@contextmanager
def handler_running(session: Session, state: str) -> Iterator[None]:
    """Mark ``session`` as in the hands of ``state``'s handler for the block."""
    session.info[_RUNNING] = state
    try:
        yield
    finally:
        del session.info[_RUNNING]


def misuse_of(session: Session, state: str) -> SessionMisuseError | None:
    """The refusal ``session`` made while ``state``'s handler ran, if any."""
    call = session.info.get(_MISUSED)
    return None if call is None else SessionMisuseError(state, call)
