"""Writing what happens to a run: state, token, history row and outbox row, together.

Every method takes a locked run inside the caller's transaction; nothing here
commits, so a transition and its history and dispatch land atomically.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.context import Claim
from engine.dispatch import Dispatcher
from engine.metrics import Metrics
from engine.registry import Registry
from models.engine import OutboxMessage, WorkflowRun, WorkflowTransition


class RunRecorder:
    """Applies moves to locked runs and records each one in the history."""

    def __init__(
        self, registry: Registry, dispatcher: Dispatcher, settings: Settings, metrics: Metrics
    ) -> None:
        self._registry = registry
        self._dispatcher = dispatcher
        self._settings = settings
        self._metrics = metrics

    def history(
        self,
        session: Session,
        run: WorkflowRun,
        trigger: str,
        to_state: str,
        *,
        now: datetime,
        duration_ms: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Append one history row (from the run's current state) and return its position."""
        run.history_len += 1
        run.updated_at = now
        session.add(
            WorkflowTransition(
                run_id=run.id,
                seq=run.history_len,
                from_state=run.state or None,
                trigger=trigger,
                to_state=to_state,
                attempt=run.attempt,
                token=run.token,
                at=now,
                duration_ms=duration_ms,
                detail=detail,
            )
        )
        return run.history_len

    def enqueue(self, session: Session, task_name: str, *, kwargs: dict[str, Any]) -> None:
        """Dispatch a workflow task after ``session`` commits, on its own queue."""
        owner, _, name = task_name.partition(".")
        spec = self._registry.task_owner(owner).tasks.get(name)
        queue = (spec.queue if spec else None) or self._settings.default_queue
        self._dispatcher.enqueue(session, task_name, kwargs=kwargs, queue=queue)

    def dispatch(
        self,
        session: Session,
        run: WorkflowRun,
        *,
        now: datetime,
        not_before: datetime | None = None,
    ) -> None:
        """Send the current state's step under a new token; unclaimed until a worker claims it."""
        run.token += 1
        run.claimed = False
        self.redeliver(session, run, now=now, not_before=not_before)

    def redeliver(
        self,
        session: Session,
        run: WorkflowRun,
        *,
        now: datetime,
        not_before: datetime | None = None,
    ) -> None:
        """Send the current step's message again under the same token (a lost delivery).

        If both copies arrive, the second finds the step claimed and is dropped.
        """
        step = self._registry.step(run.workflow, run.state)
        at = not_before or now
        run.lease_expires_at = at + timedelta(seconds=self._settings.dispatch_timeout)
        self._dispatcher.enqueue(
            session,
            step.task_name,
            kwargs={"run_id": run.id, "token": run.token},
            queue=step.queue,
            not_before=at,
            run_id=run.id,
            token=run.token,
        )

    def move(
        self,
        session: Session,
        run: WorkflowRun,
        trigger: str,
        dest: str,
        *,
        now: datetime,
        duration_ms: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Take a declared transition: enter ``dest``, then dispatch it or finish the run."""
        seq = self.history(
            session, run, trigger, dest, now=now, duration_ms=duration_ms, detail=detail
        )
        run.state = dest
        run.attempt = 0
        run.polls = 0
        run.state_entered_at = now
        run.entry_seq = seq
        if self._registry.get(run.workflow).is_terminal(dest):
            self.finish(session, run, "succeeded", now=now)
        else:
            self.dispatch(session, run, now=now)

    def advance_claimed(
        self,
        session: Session,
        claim: Claim,
        trigger: str,
        dest: str,
        context: dict[str, Any],
        now: datetime,
        duration_ms: float,
    ) -> bool:
        """``move`` for a step this worker holds, without loading the run: one fenced
        ``UPDATE`` (the run is still running, claimed, under the claim's token) and the
        inserts of its history and outbox rows. Returns ``False`` when fenced off.

        While a claim is ours nothing but the pause and cancel flags can change the run
        (every other move bumps the token), so the claim is the run as it stands.
        """
        run = WorkflowRun
        seq = claim.history_len + 1
        token = claim.token + 1
        values: dict[str, Any] = {
            "state": dest,
            "attempt": 0,
            "polls": 0,
            "token": token,
            "claimed": False,
            "state_entered_at": now,
            "entry_seq": seq,
            "history_len": seq,
            "updated_at": now,
            "context": context,
        }
        terminal = self._registry.get(claim.workflow).is_terminal(dest)
        if terminal:
            values.update(
                status="succeeded",
                lease_expires_at=None,
                pause_requested=False,
                cancel_requested=False,
                pause_at=None,
                finished_at=now,
            )
        else:
            values["lease_expires_at"] = now + timedelta(seconds=self._settings.dispatch_timeout)
        history_row = {
            "run_id": claim.run_id,
            "seq": seq,
            "from_state": claim.state,
            "trigger": trigger,
            "to_state": dest,
            "attempt": claim.attempt,
            "token": claim.token,
            "at": now,
            "duration_ms": duration_ms,
        }
        if session.get_bind().dialect.name == "postgresql":
            return self._advance_in_one_statement(
                session, claim, values, history_row, dest, terminal
            )
        fenced_update = (
            update(run)
            .where(
                run.id == claim.run_id,
                run.token == claim.token,
                run.claimed.is_(True),
                run.status == "running",
            )
            .values(values)
        )
        # Core statements on the session's connection: no ORM bookkeeping for them
        connection = session.connection()
        moved = connection.execute(fenced_update)
        if moved.rowcount != 1:
            return False
        connection.execute(insert(WorkflowTransition).values(history_row))
        if terminal:
            self._dispatcher.discard_for_run(session, claim.run_id)
            self._metrics.incr(
                "run.finished", tags={"workflow": claim.workflow, "status": "succeeded"}
            )
        else:
            step = self._registry.step(claim.workflow, dest)
            self._dispatcher.enqueue_now(
                session,
                step.task_name,
                kwargs={"run_id": claim.run_id, "token": token},
                queue=step.queue,
                run_id=claim.run_id,
                token=token,
            )
        return True

    def _advance_in_one_statement(
        self,
        session: Session,
        claim: Claim,
        values: dict[str, Any],
        history_row: dict[str, Any],
        dest: str,
        terminal: bool,
    ) -> bool:
        """PostgreSQL: the fenced update, the history row and the outbox row (or, for a
        finished run, the removal of its waiting timers) in one round trip, through a
        statement built once and bound per step."""
        token = claim.token + 1
        step = None if terminal else self._registry.step(claim.workflow, dest)
        params: dict[str, Any] = {
            "a_run_id": claim.run_id,
            "a_token": claim.token,
            "a_new_token": token,
            "a_dest": dest,
            "a_seq": history_row["seq"],
            "a_now": history_row["at"],
            "a_context": values["context"],
            "a_from": claim.state,
            "a_trigger": history_row["trigger"],
            "a_attempt": claim.attempt,
            "a_duration": history_row["duration_ms"],
        }
        if step is not None:
            params.update(
                a_lease=values["lease_expires_at"],
                a_task=step.task_name,
                a_kwargs={"run_id": claim.run_id, "token": token},
                a_queue=step.queue,
            )
        row = session.connection().execute(_advance_template(terminal), params).one()
        if row[0] is None:
            return False
        if step is None:
            self._metrics.incr(
                "run.finished", tags={"workflow": claim.workflow, "status": "succeeded"}
            )
        else:
            self._dispatcher.committed_message(
                session,
                step.task_name,
                outbox_id=row[2],
                kwargs=params["a_kwargs"],
                queue=step.queue,
            )
        return True

    def repeat(
        self,
        session: Session,
        run: WorkflowRun,
        trigger: str,
        *,
        now: datetime,
        not_before: datetime,
        duration_ms: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Stay in the state and run its step again at ``not_before`` (a retry or a poll)."""
        self.history(
            session, run, trigger, run.state, now=now, duration_ms=duration_ms, detail=detail
        )
        self.dispatch(session, run, now=now, not_before=not_before)

    def fail(
        self,
        session: Session,
        run: WorkflowRun,
        reason: str,
        detail: dict[str, Any],
        *,
        now: datetime,
        trigger: str = "fail",
        duration_ms: float | None = None,
    ) -> None:
        """End the run as failed, keeping the readable reason beside the real error."""
        summary = {k: v for k, v in detail.items() if k != "traceback"}
        self.history(
            session,
            run,
            trigger,
            run.state,
            now=now,
            duration_ms=duration_ms,
            detail={"reason": reason, **summary},
        )
        self.finish(session, run, "failed", now=now, reason=reason, detail=detail)
        failure_task = self._registry.get(run.workflow).failure_task
        if failure_task is not None:
            self.enqueue(session, f"{run.workflow}.{failure_task}", kwargs={"run_id": run.id})

    def halt(
        self,
        session: Session,
        run: WorkflowRun,
        status: str,
        trigger: str,
        *,
        now: datetime,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Pause or cancel the run where it stands, fencing off its pending step."""
        self.history(session, run, trigger, run.state, now=now, detail=detail)
        self.finish(session, run, status, now=now)

    def finish(
        self,
        session: Session,
        run: WorkflowRun,
        status: str,
        *,
        now: datetime,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Set a non-running status; the token bump fences off any step still in flight,
        and the run's waiting timers are dropped (they belong to the old token)."""
        self._dispatcher.discard_for_run(session, run.id)
        run.status = status
        run.token += 1
        run.claimed = False
        run.lease_expires_at = None
        run.pause_requested = False
        run.cancel_requested = False
        if status == "paused":
            self._metrics.incr("run.paused", tags={"workflow": run.workflow})
            return
        run.pause_at = None
        run.failure_reason = reason
        run.failure_detail = detail
        run.finished_at = now
        self._metrics.incr("run.finished", tags={"workflow": run.workflow, "status": status})


@functools.cache
def _advance_template(terminal: bool) -> Select[Any]:
    """The one-statement move of a claimed run (PostgreSQL's data-modifying CTEs)."""
    run = WorkflowRun
    runs = WorkflowRun.__table__.c
    moment = bindparam("a_now", type_=runs.updated_at.type)
    values: dict[str, Any] = {
        "state": bindparam("a_dest", type_=runs.state.type),
        "attempt": 0,
        "polls": 0,
        "token": bindparam("a_new_token", type_=runs.token.type),
        "claimed": False,
        "state_entered_at": moment,
        "entry_seq": bindparam("a_seq", type_=runs.entry_seq.type),
        "history_len": bindparam("a_seq", type_=runs.history_len.type),
        "updated_at": moment,
        "context": bindparam("a_context", type_=runs.context.type),
    }
    if terminal:
        values.update(
            status="succeeded",
            lease_expires_at=None,
            pause_requested=False,
            cancel_requested=False,
            pause_at=None,
            finished_at=moment,
        )
    else:
        values["lease_expires_at"] = bindparam("a_lease", type_=runs.lease_expires_at.type)
    moved = (
        update(run)
        .where(
            run.id == bindparam("a_run_id"),
            run.token == bindparam("a_token"),
            run.claimed.is_(True),
            run.status == "running",
        )
        .values(values)
        .returning(run.id)
        .cte("moved")
    )
    history_columns = WorkflowTransition.__table__.c
    history = (
        insert(WorkflowTransition)
        .from_select(
            [
                "run_id",
                "seq",
                "from_state",
                "trigger",
                "to_state",
                "attempt",
                "token",
                "at",
                "duration_ms",
            ],
            select(
                moved.c.id,
                bindparam("a_seq", type_=history_columns.seq.type),
                bindparam("a_from", type_=history_columns.from_state.type),
                bindparam("a_trigger", type_=history_columns.trigger.type),
                bindparam("a_dest", type_=history_columns.to_state.type),
                bindparam("a_attempt", type_=history_columns.attempt.type),
                bindparam("a_token", type_=history_columns.token.type),
                bindparam("a_now", type_=history_columns.at.type),
                bindparam("a_duration", type_=history_columns.duration_ms.type),
            ),
        )
        .returning(WorkflowTransition.id)
        .cte("history")
    )
    outbox_columns = OutboxMessage.__table__.c
    if terminal:
        follow = (
            delete(OutboxMessage)
            .where(OutboxMessage.run_id == bindparam("a_run_id"))
            .returning(OutboxMessage.id)
            .cte("discarded")
        )
    else:
        follow = (
            insert(OutboxMessage)
            .from_select(
                [
                    "task_name",
                    "args",
                    "kwargs",
                    "queue",
                    "run_id",
                    "token",
                    "not_before",
                    "created_at",
                ],
                select(
                    bindparam("a_task", type_=outbox_columns.task_name.type),
                    literal([], outbox_columns.args.type),
                    bindparam("a_kwargs", type_=outbox_columns.kwargs.type),
                    bindparam("a_queue", type_=outbox_columns.queue.type),
                    moved.c.id,
                    bindparam("a_new_token", type_=outbox_columns.token.type),
                    bindparam("a_now", type_=outbox_columns.not_before.type),
                    bindparam("a_now", type_=outbox_columns.created_at.type),
                ),
            )
            .returning(OutboxMessage.id)
            .cte("outbox")
        )
    return select(
        select(moved.c.id).scalar_subquery(),
        select(func.count()).select_from(history).scalar_subquery(),
        select(func.max(follow.c.id)).scalar_subquery(),
    )
