"""The run store of SQLite: a write transaction (``BEGIN IMMEDIATE``) is the lock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Row, delete, insert, or_
from sqlalchemy.orm import Session

from statewright.models.engine import OutboxMessage, WorkflowTransition
from statewright.stores.base import Moved, SharedStatements
from statewright.stores.statements import (
    DEADLINE_TASK,
    claim_statement,
    fenced_move,
    history_values,
    outbox_values,
)

if TYPE_CHECKING:
    from statewright.persistence import Database
    from statewright.step_session import StepSession

T = TypeVar("T")


class SqliteRunStore(SharedStatements):
    """SQLite: one writer at a time, so nothing is skipped and nothing waits on a row."""

    dialect = "sqlite"

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._step = _SqliteStep(db)

    @contextmanager
    def delivery(self) -> Iterator[_SqliteStep]:
        yield self._step  # nothing to hold: every transaction takes a pooled connection

    def advance(
        self, session: Session, params: dict[str, Any], *, terminal: bool, claim_next: bool
    ) -> Moved | None:
        """Three statements: the fenced move, its history row, then the next outbox row
        (or, for a finished run, the removal of its waiting messages)."""
        # Core statements on the session's connection: no ORM bookkeeping for them
        connection = session.connection()
        moved = connection.execute(fenced_move(terminal, claim_next), params).first()
        if moved is None:
            return None
        connection.execute(insert(WorkflowTransition).values(history_values()), params)
        if terminal:
            session.execute(_timers_of(params["a_run_id"]))
            return Moved(moved, None)
        if moved.claimed:
            return Moved(moved, None)
        outbox = insert(OutboxMessage).values(outbox_values()).returning(OutboxMessage.id)
        return Moved(moved, connection.execute(outbox, params).scalar())


class _SqliteStep:
    """A delivery on SQLite: the claim takes the write lock in its own transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim(
        self,
        params: dict[str, Any],
        taken: Callable[[Row[Any]], T],
        otherwise: Callable[[Session], T],
    ) -> T:
        with self._db.transaction() as session:
            row = session.connection().execute(claim_statement(), params).first()
            return taken(row) if row is not None else otherwise(session)

    def session(self) -> StepSession:
        return self._db.steps()


def _timers_of(run_id: str) -> Any:
    """A finished run's step and timeout messages and its deadline timer."""
    return delete(OutboxMessage).where(
        OutboxMessage.run_id == run_id,
        or_(OutboxMessage.token.is_not(None), OutboxMessage.task_name == DEADLINE_TASK),
    )
