"""Waiting states, signals and run deadlines at run time.

A waiting state's timeout and a run's deadline are durable timers: outbox rows with
a not-before time, sent by the relay when due (``<workflow>.<state>`` for a timeout,
``statewright.deadline`` for a deadline). A signal and a timeout race through the
same fenced move: each locks the run's row, and only the first finds the run still
waiting under the token it was armed with; the other is dropped and counted
(``wait.lost``, tagged by which lost). Waiting itself writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from statewright.clock import Clock
from statewright.config import Settings
from statewright.definition import Definition
from statewright.dispatch import DEADLINE_TASK, Dispatcher
from statewright.errors import IllegalOperationError, InvalidParamsError, SignalTooLateError
from statewright.jsonvalues import MAX_BYTES, check_json_object, json_size
from statewright.metrics import Metrics
from statewright.models.engine import WorkflowRun, WorkflowTransition
from statewright.persistence import Database, lock_run
from statewright.recorder import RunRecorder
from statewright.registry import Registry, StepOptions

log = structlog.get_logger("statewright.timers")


@dataclass(slots=True)
class SignalContext:
    """What a waiting state's signal handler receives.

    ``session`` is the transaction the signal's move commits in; ``context`` is the
    run's context, saved with the move.
    """

    run_id: str
    workflow: str
    state: str
    trigger: str
    data: Mapping[str, Any]
    params: Mapping[str, Any]
    context: dict[str, Any]
    session: Session
    now: datetime
    log: Any = field(default=None)

    @classmethod
    def for_run(
        cls,
        run: WorkflowRun,
        trigger: str,
        data: Mapping[str, Any],
        session: Session,
        now: datetime,
    ) -> SignalContext:
        """The context of a signal to the locked ``run``, in ``session``'s transaction."""
        return cls(
            run_id=run.id,
            workflow=run.workflow,
            state=run.state,
            trigger=trigger,
            data=data,
            params=dict(run.params),
            context=dict(run.context),
            session=session,
            now=now,
            log=structlog.get_logger("statewright.signal"),
        )


class Timers:
    """Fires timeouts and deadlines, and delivers signals, each on a locked run."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        recorder: RunRecorder,
        dispatcher: Dispatcher,
        settings: Settings,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._db = db
        self._registry = registry
        self._recorder = recorder
        self._dispatcher = dispatcher
        self._settings = settings
        self._clock = clock
        self._metrics = metrics

    # -- timeouts ------------------------------------------------------------------

    def fire_timeout(self, step: StepOptions, run_id: str, token: int) -> None:
        """The timer of waiting state ``step`` armed under ``token`` is due: take its
        timeout trigger, unless the run has moved on (a signal won: drop and count)."""
        wait = step.wait
        assert wait is not None
        assert wait.on_timeout is not None
        with self._db.transaction() as session:
            run = lock_run(session, run_id)
            if run is None or (run.status, run.state, run.token) != ("running", step.state, token):
                self._lost("timeout", step.workflow, step.state)
                return
            now = self._clock.now()
            if wait.timeout is not None and now < run.state_entered_at + wait.timeout:
                self._recorder.redeliver(session, run, now=now)  # early: armed again for then
                log.info("wait timer early; armed again", run=run_id, state=step.state)
                return
            dest = self._registry.get(step.workflow).destination(step.state, wait.on_timeout)
            assert dest is not None  # checked when the workflow was declared
            detail = {"timeout": wait.timeout.total_seconds() if wait.timeout else None}
            self._recorder.move(session, run, wait.on_timeout, dest, now=now, detail=detail)
        self._metrics.incr("wait.timed_out", tags={"workflow": step.workflow, "state": step.state})
        log.info("wait timed out", run=run_id, state=step.state, trigger=wait.on_timeout)

    def _lost(self, by: str, workflow: str, state: str) -> None:
        self._metrics.incr("wait.lost", tags={"workflow": workflow, "state": state, "by": by})
        log.info("wait already left; dropped", by=by, state=state)

    # -- signals -------------------------------------------------------------------

    def signal(
        self,
        session: Session,
        run: WorkflowRun,
        trigger: str,
        data: dict[str, Any],
        *,
        kept: bool = False,
    ) -> None:
        """Move the locked, running ``run`` along ``trigger``; in a waiting state, its
        signal handler runs first, and its writes commit with the move."""
        definition = self._registry.get(run.workflow)
        dest = self._destination(session, definition, run, trigger)
        step = self._registry.step(run.workflow, run.state)
        now = self._clock.now()
        if step.on_signal is not None:
            context = SignalContext.for_run(run, trigger, data, session, now)
            step.on_signal(context)
            run.context = check_json_object(context.context, "the run context")
        elif data:
            run.context = merged_context(run, data)
        detail = {"signal": True, "data": data or None, **({"kept": True} if kept else {})}
        self._recorder.move(session, run, trigger, dest, now=now, detail=detail)
        self._metrics.incr("signal.delivered", tags={"workflow": run.workflow, "trigger": trigger})

    def _destination(
        self, session: Session, definition: Definition, run: WorkflowRun, trigger: str
    ) -> str:
        """Where ``trigger`` takes the run from its state, or why it may not be sent there."""
        wait = definition.wait(run.state)
        if wait is not None and trigger not in wait.signals:
            raise IllegalOperationError(
                f"run {run.id} waits in state {run.state!r} for signal(s) "
                f"{', '.join(map(repr, wait.signals))}; {trigger!r} is not one of them"
            )
        dest = definition.destination(run.state, trigger)
        if dest is None:
            self.refuse_late(session, run, trigger)
            allowed = ", ".join(map(repr, definition.triggers_from(run.state))) or "(none)"
            raise IllegalOperationError(
                f"run {run.id} is in state {run.state!r}, where signal {trigger!r} is not "
                f"declared; allowed: {allowed}"
            )
        return dest

    def refuse_late(self, session: Session, run: WorkflowRun, trigger: str) -> None:
        """Raise ``SignalTooLateError`` (and count it) if the run's last move left a
        waiting state that was waiting for ``trigger``: the signal lost the race."""
        last = session.execute(
            select(WorkflowTransition).where(
                WorkflowTransition.run_id == run.id, WorkflowTransition.seq == run.history_len
            )
        ).scalar_one_or_none()
        if last is None or last.from_state is None:
            return
        wait = self._registry.get(run.workflow).wait(last.from_state)
        if wait is None or trigger not in wait.signals or last.to_state == last.from_state:
            return
        self._lost("signal", run.workflow, last.from_state)
        raise SignalTooLateError(
            f"run {run.id} stopped waiting in {last.from_state!r} at {last.at.isoformat()} "
            f"(it took {last.trigger!r} to {last.to_state!r}); signal {trigger!r} came too late"
        )

    def keep(self, session: Session, run: WorkflowRun, trigger: str, data: dict[str, Any]) -> None:
        """Keep a signal sent to the paused ``run``, to deliver when it resumes."""
        self._destination(session, self._registry.get(run.workflow), run, trigger)
        now = self._clock.now()
        kept = {"trigger": trigger, "data": data, "at": now.isoformat()}
        run.kept_signals = [*(run.kept_signals or []), kept]
        run.updated_at = now
        self._metrics.incr("signal.kept", tags={"workflow": run.workflow, "trigger": trigger})
        log.info("signal kept for resume", run=run.id, trigger=trigger)

    def deliver_kept(self, session: Session, run: WorkflowRun) -> bool:
        """On resume: deliver the first kept signal still allowed from the run's state
        (its handler in a savepoint); the rest are dropped and counted. Returns whether
        one moved the run."""
        kept, run.kept_signals = list(run.kept_signals or []), None
        for index, item in enumerate(kept):
            try:
                with session.begin_nested():
                    self.signal(session, run, item["trigger"], item["data"] or {}, kept=True)
            except Exception as error:
                self._drop_kept(run, item, repr(error))
                continue
            for rest in kept[index + 1 :]:
                self._drop_kept(run, rest, f"the run already left {item['trigger']!r}'s state")
            return True
        return False

    def _drop_kept(self, run: WorkflowRun, item: Mapping[str, Any], why: str) -> None:
        tags = {"workflow": run.workflow, "trigger": str(item["trigger"])}
        self._metrics.incr("signal.dropped", tags=tags)
        log.warning("kept signal dropped", run=run.id, trigger=item["trigger"], why=why)

    # -- deadlines -----------------------------------------------------------------

    def arm_deadline(self, session: Session, run: WorkflowRun) -> None:
        """Write the run's deadline timer (no token: a pause keeps it)."""
        if run.deadline_at is None:
            return
        definition = self._registry.get(run.workflow)
        self._dispatcher.enqueue(
            session,
            DEADLINE_TASK,
            kwargs={"run_id": run.id},
            queue=definition.defaults.queue or self._settings.default_queue,
            not_before=run.deadline_at,
            run_id=run.id,
        )

    def fire_deadline(self, run_id: str) -> None:
        """The run's deadline timer is due: take the deadline trigger where declared
        from the run's state, else fail the run. A step running now is fenced off."""
        with self._db.transaction() as session:
            run = lock_run(session, run_id)
            now = self._clock.now()
            if run is None or run.status not in ("running", "paused"):
                self._metrics.incr("deadline.dropped", tags={"reason": "finished"})
                return
            if run.deadline_at is None or run.deadline_at > now:
                self.arm_deadline(session, run)  # early (or cleared): wait for the real time
                return
            self._pass_deadline(session, run, run.deadline_at, now)
        self._metrics.incr("run.deadline_passed", tags={"workflow": run.workflow})

    def _pass_deadline(
        self, session: Session, run: WorkflowRun, deadline: datetime, now: datetime
    ) -> None:
        definition = self._registry.get(run.workflow)
        rule = definition.deadline
        trigger = rule.trigger if rule else None
        dest = definition.destination(run.state, trigger) if trigger else None
        detail = {"deadline": deadline.isoformat(), "step_was_running": run.claimed}
        if trigger is None or dest is None:
            reason = rule.reason if rule else f"The {run.workflow} run did not finish in time"
            error = f"deadline {deadline.isoformat()} passed in state {run.state!r}"
            failure = {"error_type": "DeadlineExceeded", "error_message": error, **detail}
            self._recorder.fail(session, run, reason, failure, now=now, trigger="deadline")
            log.warning("run failed: deadline passed", run=run.id, state=run.state)
            return
        self._dispatcher.discard_for_run(session, run.id, steps_only=True)
        if run.status == "paused":  # the deadline outranks a pause: resume to take it
            run.status = "running"
            self._recorder.history(session, run, "resume", run.state, now=now, detail=detail)
        run.kept_signals = None
        run.claimed = False
        self._recorder.move(session, run, trigger, dest, now=now, detail=detail)
        log.warning("deadline passed", run=run.id, state=run.state, trigger=trigger)


def merged_context(run: WorkflowRun, data: dict[str, Any]) -> dict[str, Any]:
    """The run's context with signal ``data`` merged in, refused if it would outgrow the
    limit every step's context is held to (else the next step, not the signal, fails)."""
    merged = {**run.context, **data}
    size = json_size(merged)
    if size > MAX_BYTES:
        raise InvalidParamsError(
            f"signal data would make the context of run {run.id} {size} bytes as JSON; "
            f"at most {MAX_BYTES} bytes are allowed (it holds {json_size(run.context)} "
            "bytes already; store large data in your own tables and pass its id)"
        )
    return merged
