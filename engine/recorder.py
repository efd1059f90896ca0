"""Writing what happens to a run: state, token, history row and outbox row, together.

Every method takes a locked run inside the caller's transaction; nothing here
commits, so a transition and its history and dispatch land atomically.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

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
                session, claim, fenced_update, history_row, dest, terminal
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
        fenced_update: Update,
        history_row: dict[str, Any],
        dest: str,
        terminal: bool,
    ) -> bool:
        """PostgreSQL: the fenced update, the history row and the outbox row (or, for a
        finished run, the removal of its waiting timers) in one round trip."""
        moved = fenced_update.returning(WorkflowRun.id).cte("moved")
        history_table = WorkflowTransition.__table__
        history = (
            insert(WorkflowTransition)
            .from_select(
                list(history_row),
                select(
                    moved.c.id,
                    *(
                        literal(value, history_table.c[name].type)
                        for name, value in history_row.items()
                        if name != "run_id"
                    ),
                ),
            )
            .returning(WorkflowTransition.id)
            .cte("history")
        )
        token = claim.token + 1
        step = None if terminal else self._registry.step(claim.workflow, dest)
        if step is None:
            follow = (
                delete(OutboxMessage)
                .where(OutboxMessage.run_id == claim.run_id)
                .returning(OutboxMessage.id)
                .cte("discarded")
            )
        else:
            now = history_row["at"]
            outbox_row: dict[str, Any] = {
                "task_name": step.task_name,
                "args": [],
                "kwargs": {"run_id": claim.run_id, "token": token},
                "queue": step.queue,
                "run_id": claim.run_id,
                "token": token,
                "not_before": now,
                "created_at": now,
            }
            outbox_table = OutboxMessage.__table__
            follow = (
                insert(OutboxMessage)
                .from_select(
                    list(outbox_row),
                    select(
                        *(
                            literal(value, outbox_table.c[name].type)
                            for name, value in outbox_row.items()
                        )
                    ).where(exists(select(moved.c.id))),
                )
                .returning(OutboxMessage.id)
                .cte("outbox")
            )
        row = (
            session.connection()
            .execute(
                select(
                    select(moved.c.id).scalar_subquery(),
                    select(func.count()).select_from(history).scalar_subquery(),
                    select(func.max(follow.c.id)).scalar_subquery(),
                )
            )
            .one()
        )
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
                kwargs={"run_id": claim.run_id, "token": token},
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
