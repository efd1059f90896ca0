"""The run store of PostgreSQL: row locks, ``SKIP LOCKED``, a move in one statement."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Row, Select, bindparam, delete, func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from statewright.models.engine import OutboxMessage, WorkflowTransition
from statewright.pool_ping import rested_checkout
from statewright.stores.base import Moved, SharedStatements
from statewright.stores.statements import (
    claim_statement,
    fenced_move,
    history_values,
    outbox_values,
)

if TYPE_CHECKING:
    from statewright.persistence import Database
    from statewright.step_session import StepSession

T = TypeVar("T")
S = TypeVar("S", bound=Select[*tuple[Any, ...]])


class PostgresRunStore(SharedStatements):
    """PostgreSQL: several workers and relays at once, each skipping what another holds."""

    dialect = "postgresql"

    def skip_locked(self, statement: S) -> S:
        return statement.with_for_update(skip_locked=True)

    def locked(self, statement: S) -> S:
        return statement.with_for_update()

    @contextmanager
    def delivery(self) -> Iterator[_PostgresStep]:
        # one pooled connection for the claims and the handlers' transactions: one checkout,
        # not pinged if it rested briefly (the claim is tried again on a closed connection)
        with rested_checkout():
            connection = self._db.engine.connect()
        with connection:
            yield _PostgresStep(self._db, connection)

    def advance(
        self, session: Session, params: dict[str, Any], *, terminal: bool, claim_next: bool
    ) -> Moved | None:
        statement = _advance_in_one_statement(terminal, claim_next)
        moved = session.connection().execute(statement, params).first()
        return None if moved is None else Moved(moved, moved.outbox_id)


class _PostgresStep:
    """A delivery on PostgreSQL: claims in autocommit on the delivery's connection."""

    def __init__(self, db: Database, connection: Connection) -> None:
        self._db = db
        self._connection = connection

    def claim(
        self,
        params: dict[str, Any],
        taken: Callable[[Row[Any]], T],
        otherwise: Callable[[Session], T],
    ) -> T:
        row = self._claim_in_autocommit(params)
        if row is not None:
            return taken(row)
        with self._db.transaction() as session:
            return otherwise(session)

    def _claim_in_autocommit(self, params: dict[str, Any]) -> Row[Any] | None:
        """The claim as one statement in autocommit: no BEGIN or COMMIT of its own.

        The claim is the delivery's first statement on a connection the pool pinged only
        if it had rested (``statewright.persistence``). If the database closed it since,
        the claim is tried once more on a new connection: sent or not, the first try
        changed nothing this delivery could lose (a claim that did commit leaves the run
        claimed, so the second try drops the message and the lease brings the step back).
        """
        try:
            return self._claim_once(params)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            return self._claim_once(params)  # on a new connection

    def _claim_once(self, params: dict[str, Any]) -> Row[Any] | None:
        connection = self._connection
        level = connection.default_isolation_level
        connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            return connection.execute(claim_statement(), params).first()
        finally:
            if connection.invalidated:
                connection.rollback()  # the next statement reconnects
            else:
                connection.commit()  # ends SQLAlchemy's transaction; nothing is sent
            connection.execution_options(isolation_level=level)

    def session(self) -> StepSession:
        return self._db.steps(bind=self._connection)


@functools.cache
def _advance_in_one_statement(terminal: bool, claim_next: bool = False) -> Select[Any]:
    """The fenced move, its history row and the next outbox row (or, for a finished run,
    the removal of its waiting timers) as one statement. The outbox row is written only
    if the move did not claim the next step for this worker.

    Returns no row when fenced off; otherwise the moved run's returned columns (see
    ``fenced_move``), the history row count and the outbox row's id."""
    moved = fenced_move(terminal, claim_next).cte("moved")

    def from_moved(values: dict[str, Any]) -> Select[Any]:
        # the rows are inserted only if the fenced move happened
        return select(*(moved.c.id if name == "run_id" else v for name, v in values.items()))

    history = history_values()
    written = (
        insert(WorkflowTransition)
        .from_select(list(history), from_moved(history))
        .returning(WorkflowTransition.id)
        .cte("history")
    )
    if terminal:
        follow = (
            delete(OutboxMessage)
            .where(OutboxMessage.run_id == bindparam("a_run_id"), OutboxMessage.token.is_not(None))
            .returning(OutboxMessage.id)
            .cte("discarded")
        )
    else:
        outbox = outbox_values()
        follow = (
            insert(OutboxMessage)
            .from_select(list(outbox), from_moved(outbox).where(moved.c.claimed.is_(False)))
            .returning(OutboxMessage.id)
            .cte("outbox")
        )
    # the data-modifying CTEs run whether or not the final select reads them
    return select(
        *moved.c,
        select(func.count()).select_from(written).scalar_subquery().label("history_rows"),
        select(func.max(follow.c.id)).scalar_subquery().label("outbox_id"),
    ).select_from(moved)
