"""The run store's interface, and what both databases share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from statewright.lifecycle import RUNNING
from statewright.models.engine import OutboxMessage, WorkflowRun
from statewright.stores.statements import lock_run

if TYPE_CHECKING:
    from statewright.persistence import Database
    from statewright.step_session import StepSession

T = TypeVar("T")
S = TypeVar("S", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True, slots=True)
class Moved:
    """A claimed run's fenced move: the row the move returned, and its outbox row's id
    (``None`` for a finished run, or when the move claimed the next step here)."""

    row: Row[Any]
    outbox_id: int | None

    @property
    def claimed(self) -> bool:
        """Whether the move claimed the next step for this worker."""
        return bool(self.row.claimed)


class StepConnection(Protocol):
    """What one delivery of a step message uses: its claim and its handlers' sessions."""

    def claim(
        self,
        params: dict[str, Any],
        taken: Callable[[Row[Any]], T],
        otherwise: Callable[[Session], T],
    ) -> T:
        """Run the claiming statement (``statements.claim_statement``) bound with
        ``params``: ``taken`` gets the claimed row; when no row was claimed,
        ``otherwise`` gets a writing transaction to lock the run and say why."""
        ...

    def session(self) -> StepSession:
        """A session for a handler and its completion."""
        ...


class RunStore(Protocol):
    """The run table's statements, as one database runs them."""

    #: ``"sqlite"`` or ``"postgresql"``.
    dialect: str

    def delivery(self) -> AbstractContextManager[StepConnection]:
        """The connection a delivery holds while it claims and runs its steps."""
        ...

    def lock(self, session: Session, run_id: str) -> WorkflowRun | None:
        """The run row, locked until the transaction ends (``None`` if there is none)."""
        ...

    def advance(
        self, session: Session, params: dict[str, Any], *, terminal: bool, claim_next: bool
    ) -> Moved | None:
        """Move a claimed run (bound with ``params``), write its history row and either
        its next step's outbox row, the next step's claim, or (``terminal``) the removal
        of its waiting messages; ``None`` when the claim was fenced off."""
        ...

    def running_runs(
        self,
        session: Session,
        workflows: Sequence[str],
        *,
        only_run: str | None = None,
        expired_before: Any = None,
        unclaimed: bool = False,
        limit: int | None = None,
    ) -> Sequence[WorkflowRun]:
        """Running runs of ``workflows``, locked; those another transaction holds are
        skipped where the database can. ``expired_before``: only leases that lapsed
        before it, earliest first; ``unclaimed``: only runs no worker holds."""
        ...

    def due_outbox(
        self, session: Session, due: Any, *, limit: int, only_run: str | None = None
    ) -> Sequence[OutboxMessage]:
        """Outbox rows due by ``due``, earliest first, locked (skipping locked ones
        where the database can)."""
        ...

    def skip_locked(self, statement: S) -> S:
        """``statement`` locking its rows and skipping those already locked, where the
        database can; as it is where a write transaction is the lock."""
        ...

    def locked(self, statement: S) -> S:
        """``statement`` locking its rows until the transaction ends, waiting for them
        where the database locks rows; as it is where a write transaction is the lock."""
        ...


class SharedStatements:
    """The statements both databases run alike; ``skip_locked`` tells them apart."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def skip_locked(self, statement: S) -> S:
        return statement

    def locked(self, statement: S) -> S:
        return statement

    def lock(self, session: Session, run_id: str) -> WorkflowRun | None:
        return lock_run(session, run_id)

    def running_runs(
        self,
        session: Session,
        workflows: Sequence[str],
        *,
        only_run: str | None = None,
        expired_before: Any = None,
        unclaimed: bool = False,
        limit: int | None = None,
    ) -> Sequence[WorkflowRun]:
        run = WorkflowRun
        statement = select(run).where(
            run.status == RUNNING,  # lifecycle.Redispatch.allowed
            run.workflow.in_(list(workflows)),
        )
        if only_run is not None:
            statement = statement.where(run.id == only_run)
        statement = self.skip_locked(statement)
        if unclaimed:
            statement = statement.where(run.claimed.is_(False))
        if expired_before is not None:
            statement = statement.where(run.lease_expires_at < expired_before)
            statement = statement.order_by(run.lease_expires_at)
        if limit is not None:
            statement = statement.limit(limit)
        return session.execute(statement).scalars().all()

    def due_outbox(
        self, session: Session, due: Any, *, limit: int, only_run: str | None = None
    ) -> Sequence[OutboxMessage]:
        row = OutboxMessage
        statement = (
            select(row).where(row.not_before <= due).order_by(row.not_before, row.id).limit(limit)
        )
        if only_run is not None:
            statement = statement.where(row.run_id == only_run)
        return session.execute(self.skip_locked(statement)).scalars().all()
