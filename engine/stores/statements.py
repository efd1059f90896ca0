"""The run table's statements that both databases share, built once and bound per call.

A claim, a fenced move and the history and outbox rows of a move are written here
as SQLAlchemy Core; ``statewright.stores.sqlite`` and ``statewright.stores.postgresql`` put
them together the way each database runs them best.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, case, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.elements import ColumnElement

from statewright.jsonvalues import is_run_id
from statewright.lifecycle import RUNNING, SUCCEEDED
from statewright.lifecycle.state import claiming, dispatching, ending, entering, recording
from statewright.models.base import UTCDateTime
from statewright.models.engine import OutboxMessage, WorkflowRun, WorkflowTransition

if TYPE_CHECKING:
    from statewright.context import Claim
    from statewright.registry import StepOptions

#: The task name of a run's deadline timer (an outbox row without a token).
DEADLINE_TASK = "statewright.deadline"

#: What a claiming statement returns: the columns ``Claim.of`` reads.
CLAIM_COLUMNS = (
    WorkflowRun.id,
    WorkflowRun.workflow,
    WorkflowRun.state,
    WorkflowRun.token,
    WorkflowRun.attempt,
    WorkflowRun.polls,
    WorkflowRun.params,
    WorkflowRun.context,
    WorkflowRun.state_entered_at,
    WorkflowRun.entry_seq,
    WorkflowRun.history_len,
)


def lock_run(session: Session, run_id: str) -> WorkflowRun | None:
    """The run row, locked until the transaction ends (``None`` if there is no such run).

    ``FOR UPDATE`` on PostgreSQL; on SQLite the statement takes the write lock (see
    ``statewright.persistence``)."""
    if not is_run_id(run_id):
        return None
    statement = select(WorkflowRun).where(WorkflowRun.id == run_id).with_for_update()
    # the locked row's values win over anything this session loaded earlier
    statement = statement.execution_options(populate_existing=True)
    return session.execute(statement).scalar_one_or_none()


def nothing_asked_at(state: Any) -> ColumnElement[bool]:
    """The run has no cancel or pause asked for, now or at ``state``: a claim of
    ``state``'s step may go ahead."""
    run = WorkflowRun
    return and_(
        run.cancel_requested.is_(False),
        run.pause_requested.is_(False),
        or_(run.pause_at.is_(None), run.pause_at != state),
        or_(run.cancel_at.is_(None), run.cancel_at != state),
    )


@functools.cache
def claim_statement() -> ReturningUpdate[Any]:
    """Take a step if the run is current, unclaimed, with no pause or cancel scheduled
    and attempts left; returns the claimed run's columns, or no row.

    Bound with ``claim_run_id``, ``claim_token``, ``claim_workflow``, ``claim_state``,
    ``claim_max_attempts`` and ``claim_lease``."""
    run = WorkflowRun
    return (
        update(run)
        .where(
            run.id == bindparam("claim_run_id"),
            run.token == bindparam("claim_token"),
            run.status == RUNNING,  # lifecycle.Claim.allowed
            run.workflow == bindparam("claim_workflow"),
            run.state == bindparam("claim_state"),
            run.claimed.is_(False),
            nothing_asked_at(bindparam("claim_state")),
            run.attempt < bindparam("claim_max_attempts"),
        )
        .values(claiming(run.attempt, bindparam("claim_lease", type_=UTCDateTime())))
        .returning(*CLAIM_COLUMNS)
    )


def _bound(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


#: Columns ``ending`` clears that a claimed running run never has set.
_UNSET_WHILE_RUNNING = frozenset({"failure_reason", "failure_detail", "kept_signals"})


@functools.cache
def fenced_move(terminal: bool, claim_next: bool = False) -> ReturningUpdate[Any]:
    """The move of a claimed run to ``a_dest``, fenced on the claim's token; returns the
    run's id and whether ``a_dest``'s step is claimed by this worker (with
    ``claim_next``, also the columns of that claim).

    The values are the lifecycle's (``statewright.lifecycle.state``): the history row
    recorded, ``a_dest`` entered, then the run ended (``terminal``) or its step
    dispatched. With ``claim_next``, the step is claimed (attempt 1, leased until
    ``a_claim_lease``, marked with ``a_marker``) unless the run has a pause or cancel
    asked for, as a claim would.
    """
    run = WorkflowRun
    runs = WorkflowRun.__table__.c
    moment = _bound("a_now", runs.updated_at)
    dest = _bound("a_dest", runs.state)
    token = _bound("a_new_token", runs.token)
    values: dict[str, Any] = {
        **recording(_bound("a_seq", runs.history_len), moment),
        **entering(dest, moment, _bound("a_seq", runs.entry_seq)),
        "context": _bound("a_context", runs.context),
    }
    if terminal:
        ended = ending(SUCCEEDED, moment, token)
        # a claimed running run has no failure and no kept signals: left as they are
        values.update({k: v for k, v in ended.items() if k not in _UNSET_WHILE_RUNNING})
    else:
        values.update(dispatching(token, _bound("a_lease", runs.lease_expires_at)))
    if claim_next:
        # claimed (lifecycle.Claim) where nothing is asked at dest (the SQL form of
        # lifecycle.held), else dispatched as above
        claimed = nothing_asked_at(dest)
        claim = claiming(values["attempt"], _bound("a_claim_lease", runs.lease_expires_at))
        values.update(
            claimed=claimed,
            attempt=case((claimed, claim["attempt"]), else_=values["attempt"]),
            lease_expires_at=case(
                (claimed, claim["lease_expires_at"]), else_=values["lease_expires_at"]
            ),
            claim_marker=case((claimed, _bound("a_marker", runs.claim_marker)), else_=None),
        )
    return (
        update(run)
        .where(
            run.id == bindparam("a_run_id"),
            run.token == bindparam("a_token"),
            run.claimed.is_(True),
            run.status == RUNNING,  # lifecycle.Advance.allowed
        )
        .values(values)
        .returning(run.claimed, *(CLAIM_COLUMNS if claim_next else (run.id,)))
    )


def history_values() -> dict[str, Any]:
    """The history row of a move, column by column."""
    c = WorkflowTransition.__table__.c
    return {
        "run_id": _bound("a_run_id", c.run_id),
        "seq": _bound("a_seq", c.seq),
        "from_state": _bound("a_from", c.from_state),
        "trigger": _bound("a_trigger", c.trigger),
        "to_state": _bound("a_dest", c.to_state),
        "attempt": _bound("a_attempt", c.attempt),
        "token": _bound("a_token", c.token),
        "at": _bound("a_now", c.at),
        "duration_ms": _bound("a_duration", c.duration_ms),
    }


def outbox_values() -> dict[str, Any]:
    """The outbox row of the next step's message, column by column."""
    c = OutboxMessage.__table__.c
    return {
        "task_name": _bound("a_task", c.task_name),
        "args": literal([], c.args.type),
        "kwargs": _bound("a_kwargs", c.kwargs),
        "queue": _bound("a_queue", c.queue),
        "run_id": _bound("a_run_id", c.run_id),
        "token": _bound("a_new_token", c.token),
        "not_before": _bound("a_now", c.not_before),
        "created_at": _bound("a_now", c.created_at),
    }


def move_values(
    claim: Claim,
    trigger: str,
    dest: str,
    context: dict[str, Any],
    now: datetime,
    duration_ms: float,
) -> dict[str, Any]:
    """What the statements of a claimed run's move to ``dest`` bind: the run's new
    values and its history row's (``RunRecorder.advance_claimed``)."""
    return {
        "a_run_id": claim.run_id,
        "a_token": claim.token,
        "a_new_token": claim.token + 1,
        "a_dest": dest,
        "a_seq": claim.history_len + 1,
        "a_now": now,
        "a_context": context,
        "a_from": claim.state,
        "a_trigger": trigger,
        "a_attempt": claim.attempt,
        "a_duration": duration_ms,
    }


def dispatch_values(step: StepOptions, claim: Claim, lease: datetime) -> dict[str, Any]:
    """What the outbox row of the next step's message binds (its lease if dispatched)."""
    return {
        "a_lease": lease,
        "a_task": step.task_name,
        "a_kwargs": {"run_id": claim.run_id, "token": claim.token + 1},
        "a_queue": step.queue,
    }
