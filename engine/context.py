"""What a handler receives: its run's data, a session for domain writes, a logger."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from statewright.deliveries import TaskDelivery


def new_marker() -> int:
    """A random 62-bit value no other writer can come up with."""
    return secrets.randbits(62)


@dataclass(frozen=True, slots=True)
class Claim:
    """A step a worker has claimed: the run as it stood when the claim committed."""

    run_id: str
    workflow: str
    state: str
    token: int
    attempt: int
    polls: int
    params: Mapping[str, Any]
    context: Mapping[str, Any]
    state_entered_at: datetime
    entry_seq: int
    #: How many history rows the run had when claimed (none are added while it is ours).
    history_len: int
    #: What this step's move writes as ``claim_marker`` if it claims the next step in
    #: process: only this worker knows it, so only its own claim carries it.
    successor_marker: int = field(default_factory=new_marker)

    @classmethod
    def of(cls, run: Any) -> Claim:
        """The claim of a locked run, or of the row a claiming statement returned."""
        return cls(
            run_id=run.id,
            workflow=run.workflow,
            state=run.state,
            token=run.token,
            attempt=run.attempt,
            polls=run.polls,
            params=dict(run.params),
            context=dict(run.context),
            state_entered_at=run.state_entered_at,
            entry_seq=run.entry_seq,
            history_len=run.history_len,
        )


Enqueue = Callable[..., None]


@dataclass(slots=True)
class StepContext:
    """The handler's view of its step.

    ``session`` is the transaction the step completes in: domain writes made through
    it commit together with the transition, or not at all. ``context`` is the run's
    small JSON context; changes to it are saved when the step completes.
    ``idempotency_key`` is the same for every attempt of this visit to the state:
    pass it to external services so a retried side effect happens once.
    """

    run_id: str
    workflow: str
    state: str
    attempt: int
    polls: int
    params: Mapping[str, Any]
    context: dict[str, Any]
    idempotency_key: str
    session: Session
    now: datetime
    log: Any = field(default=None)
    _enqueue: Enqueue | None = field(default=None, repr=False)

    def enqueue(self, task: str, **kwargs: Any) -> None:
        """Dispatch ``task`` (a task of this workflow, or a full task name) after this step
        commits; nothing is sent if the step fails."""
        assert self._enqueue is not None
        name = task if "." in task else f"{self.workflow}.{task}"
        self._enqueue(self.session, name, kwargs=kwargs, run_id=self.run_id)

    @classmethod
    def for_claim(
        cls, claim: Claim, session: Session, now: datetime, enqueue: Enqueue | None = None
    ) -> StepContext:
        return cls(
            run_id=claim.run_id,
            workflow=claim.workflow,
            state=claim.state,
            attempt=claim.attempt,
            polls=claim.polls,
            params=claim.params,
            context=dict(claim.context),
            idempotency_key=f"{claim.run_id}:{claim.state}:{claim.entry_seq}",
            session=session,
            now=now,
            log=structlog.get_logger("statewright.step"),
            _enqueue=enqueue,
        )


@dataclass(slots=True)
class TaskContext:
    """What a ``@task`` receives: transactions, after-commit dispatch, a logger, metrics.

    ``workflow`` is the name of the workflow or task group the task belongs to.
    ``delivery`` is set when the task came through the outbox: its idempotency key and
    attempt, and ``done(session)`` to commit the task's "done" mark with its last writes.
    """

    workflow: str
    task: str
    now: datetime
    log: Any
    metrics: Any
    _transaction: Callable[[], AbstractContextManager[Session]] = field(repr=False)
    _enqueue: Enqueue = field(repr=False)
    _postgresql: bool = field(default=False, repr=False)
    delivery: TaskDelivery | None = None

    @property
    def is_postgresql(self) -> bool:
        """Whether row locks can skip locked rows (PostgreSQL) or not (SQLite)."""
        return bool(self._postgresql)

    def transaction(self) -> AbstractContextManager[Session]:
        """A session in one transaction (committed on success, rolled back on error)."""
        return self._transaction()

    def enqueue(self, session: Session, task: str, **kwargs: Any) -> None:
        """Dispatch ``task`` after ``session`` commits (tied to this task's run, if any)."""
        name = task if "." in task else f"{self.workflow}.{task}"
        run_id = self.delivery.run_id if self.delivery is not None else None
        self._enqueue(session, name, kwargs=kwargs, run_id=run_id)

    def done(self, session: Session) -> None:
        """Mark this task done in ``session``'s transaction: the mark commits with the
        task's writes, so a copy of its message delivered later does nothing. If a newer
        delivery took the task over, ``DeliverySuperseded`` rolls the transaction back
        and ends this one quietly. Without a delivery (a direct call) it does nothing."""
        if self.delivery is not None:
            self.delivery.done(session)
