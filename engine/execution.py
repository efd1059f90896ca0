"""Executing a step: claim (short transaction), execute, complete (one transaction).

1. ``claim_step`` locks the run and checks the message is current: a message for a
   run that is gone, finished, elsewhere, or carrying an old token is dropped and
   counted. A scheduled pause or cancel applies here. Otherwise the attempt is
   counted and a lease set, and the claim commits, so a crash mid-step still counts.
2. The handler runs with a session for its domain writes.
3. ``complete`` re-locks the run in the handler's own transaction and checks the
   token is still ours; the outcome, domain writes, history and next dispatch
   commit together. On error, domain writes roll back and the retry or failure is
   recorded in a fresh transaction.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Row, bindparam, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate

from statewright.clock import Clock
from statewright.config import Settings
from statewright.context import Claim, StepContext
from statewright.decide import (
    Advance,
    Decision,
    FailRun,
    PollAgain,
    RetryLater,
    RunView,
    decide_error,
    decide_lost_worker,
    decide_outcome,
    error_detail,
)
from statewright.errors import InvalidParamsError
from statewright.hooks.logging import bind_log_fields
from statewright.hooks.sentry import report_failure, tag_scope
from statewright.instrumentation import HARD_LIMIT_MARGIN, bind_step
from statewright.jsonvalues import check_json_object
from statewright.metrics import Metrics
from statewright.models.base import UTCDateTime
from statewright.models.engine import WorkflowRun
from statewright.persistence import Database, lock_run
from statewright.recorder import CLAIM_COLUMNS, Advanced, RunRecorder, nothing_asked_at
from statewright.registry import Registry, StepOptions
from statewright.step_session import handler_running, misuse_of

log = structlog.get_logger("statewright.execution")


class StepExecutor:
    """Runs one step message through claim, handler and completion."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        recorder: RunRecorder,
        settings: Settings,
        clock: Clock,
        metrics: Metrics,
        rng: random.Random,
    ) -> None:
        self._db = db
        self._registry = registry
        self._recorder = recorder
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._rng = rng
        #: How long a delivery may go on to its run's next steps; the settings' value,
        #: which the step tasks' time limits include (the test harness sets 0).
        self.continue_for = settings.continue_for
        #: Called with the step and its claim just before the handler; an error it raises
        #: counts as the handler's (the test harness injects failures here).
        self.before_handler: Callable[[StepOptions, Claim], None] | None = None

    def run_step(self, step: StepOptions, run_id: str, token: int) -> None:
        """Handle one delivery of ``step``'s message for ``run_id`` under ``token``.

        When the step advances, the delivery may go on to the run's next step in this
        process (see ``_continuation``): its claim commits with the move, and no
        message is sent for it.
        """
        bind_step(workflow=step.workflow, run=run_id, state=step.state, token=token)
        delivery = _Delivery.starting(step, self._settings.continue_for, self.continue_for)
        if self._db.is_sqlite:
            self._run_claimed(step, self.claim_step(step, run_id, token), None, delivery)
            return
        # one pooled connection for the claims and the handlers' transactions: one checkout
        with self._db.engine.connect() as connection:
            claim = self.claim_step(step, run_id, token, connection)
            self._run_claimed(step, claim, connection, delivery)

    def _run_claimed(
        self,
        step: StepOptions,
        claim: Claim | None,
        connection: Connection | None,
        delivery: _Delivery,
    ) -> None:
        """Execute a claimed step, then each step the delivery continues to."""
        while claim is not None:
            continued = self.execute(step, claim, connection, delivery)
            if continued is None:
                return
            step, claim = continued

    def execute(
        self,
        step: StepOptions,
        claim: Claim,
        connection: Connection | None = None,
        delivery: _Delivery | None = None,
    ) -> tuple[StepOptions, Claim] | None:
        """Run the handler of a claimed step and complete it (or record its error).

        Returns the next step and its claim when the run continues in this process.
        """
        bind_step(state=step.state, token=claim.token, attempt=claim.attempt)
        log.info("step claimed")
        session = self._db.steps() if connection is None else self._db.steps(bind=connection)
        started = time.perf_counter()
        try:
            context = StepContext.for_claim(
                claim, session, self._clock.now(), self._recorder.enqueue
            )
            if self.before_handler is not None:
                self.before_handler(step, claim)
            with handler_running(session, step.state):
                outcome = step.handler(context)
            misuse = misuse_of(session, step.state)
            if misuse is not None:
                raise misuse  # even if the handler caught the refusal and went on
            continued = self._complete(
                step, claim, session, outcome, context.context, started, delivery
            )
        except Exception as error:
            session.rollback()
            failure = misuse_of(session, step.state) or error
            self._record_error(step, claim, failure, _elapsed_ms(started))
            return None
        finally:
            session.close()
        if continued is None or delivery is None:
            return None
        return self._go_on(continued, delivery)

    def _go_on(
        self, continued: _Continued, delivery: _Delivery
    ) -> tuple[StepOptions, Claim] | None:
        """After the commit that claimed the next step: run it, unless the commit took
        the time it needed. Whatever goes wrong before its handler starts hands the
        claim back as a message, so the step never waits for its lease."""
        step, claim = continued.step, continued.claim
        try:
            self._completed(continued.finished, continued.decision, continued.duration_ms)
            if delivery.time_left_for(step) is None:
                self._hand_back(step, claim, "the delivery has no time left for it")
                return None
            self._metrics.incr("step.continued", tags=_tags(step))
            # logs and errors name the step's own task; task_id stays the delivery's
            bind_log_fields(task=step.task_name)
            tag_scope(task_name=step.task_name)
        except Exception as error:
            self._hand_back(step, claim, repr(error))
            raise
        return step, claim

    def _hand_back(self, step: StepOptions, claim: Claim, why: str) -> None:
        """Give up a continued step that never started: dispatch it as a message (under
        a new token, its attempt not counted) if the run still stands as claimed."""
        try:
            with self._db.transaction() as session:
                run = lock_run(session, claim.run_id)
                if not _still_ours(run, claim):
                    return
                assert run is not None
                run.attempt -= 1
                self._recorder.dispatch(session, run, now=self._clock.now())
        except Exception as error:  # its lease still recovers it
            log.warning("continued step not handed back", why=why, error=repr(error))
            return
        log.info("continued step handed back as a message", why=why, state=step.state)

    def claim_step(
        self, step: StepOptions, run_id: str, token: int, connection: Connection | None = None
    ) -> Claim | None:
        """Lock the run and take the step, or drop the message and say why.

        The common case is one ``UPDATE … RETURNING``: the run is current, unclaimed,
        with no pause or cancel scheduled and attempts left. Anything else takes the
        slow path, which locks the row and says why.
        """
        if not self._db.is_sqlite:
            row = self._claim_in_autocommit(step, run_id, token, connection)
            if row is not None:
                return Claim.of(row)
        with self._db.transaction() as session:
            if self._db.is_sqlite:
                statement, params = self._claim_statement(step, run_id, token)
                row = session.connection().execute(statement, params).first()
                if row is not None:
                    return Claim.of(row)
            run = lock_run(session, run_id)
            stale = _stale_reason(run, step, token)
            if stale is not None:
                self._drop(step, stale)
                return None
            assert run is not None
            now = self._clock.now()
            if run.cancel_requested or run.cancel_at == run.state:  # a cancel beats a pause
                self._recorder.halt(session, run, "cancelled", "cancel", now=now)
                log.info("run cancelled at step boundary")
                return None
            if run.pause_requested or run.pause_at == run.state:
                if run.pause_at == run.state:
                    run.pause_at = None
                self._recorder.halt(session, run, "paused", "pause", now=now)
                log.info("run paused at step boundary")
                return None
            run.attempt += 1
            lost = decide_lost_worker(step, _view(run))
            if lost is not None:
                run.attempt -= 1
                self._recorder.fail(session, run, lost.reason, lost.detail, now=now)
                self._metrics.incr("step.failed", tags=_tags(step))
                log.warning("run failed: worker lost", reason=lost.reason)
                report_failure(lost.reason)
                return None
            run.claimed = True
            run.lease_expires_at = self._lease(step, now)
            return Claim.of(run)

    def _claim_in_autocommit(
        self, step: StepOptions, run_id: str, token: int, connection: Connection | None
    ) -> Row[Any] | None:
        """The fast claim as one statement in autocommit: no BEGIN or COMMIT of its own."""
        statement, params = self._claim_statement(step, run_id, token)
        if connection is None:
            with self._db.engine.connect() as own:
                own.execution_options(isolation_level="AUTOCOMMIT")
                return own.execute(statement, params).first()
        level = connection.default_isolation_level
        connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            return connection.execute(statement, params).first()
        finally:
            connection.commit()  # ends SQLAlchemy's transaction; nothing is sent in autocommit
            connection.execution_options(isolation_level=level)

    def _lease(self, step: StepOptions, now: datetime) -> datetime:
        """When a claimed step counts as lost: past its delivery's hard time limit (the
        step's own plus ``continue_for``) and the grace."""
        limit = step.time_limit + self._settings.continue_for
        seconds = limit + HARD_LIMIT_MARGIN + self._settings.lease_grace
        return now + timedelta(seconds=seconds)

    def _claim_statement(
        self, step: StepOptions, run_id: str, token: int
    ) -> tuple[ReturningUpdate[Any], dict[str, Any]]:
        """Take the step if the run is current, unclaimed, with no pause or cancel
        scheduled and attempts left; returns the claimed run's columns, or no row.

        The statement is built once; each claim only binds its values.
        """
        return _claim_template(), {
            "claim_run_id": run_id,
            "claim_token": token,
            "claim_workflow": step.workflow,
            "claim_state": step.state,
            "claim_max_attempts": step.retry.max_attempts,
            "claim_lease": self._lease(step, self._clock.now()),
        }

    def _complete(
        self,
        step: StepOptions,
        claim: Claim,
        session: Session,
        outcome: object,
        context: dict[str, object],
        started: float,
        delivery: _Delivery | None,
    ) -> _Continued | None:
        now = self._clock.now()
        definition = self._registry.get(step.workflow)
        decision = decide_outcome(definition, step, _claim_view(claim), outcome, now)
        # entering a waiting state arms its timer (or applies a pause) on the locked run
        if isinstance(decision, Advance) and definition.wait(decision.dest) is None:
            try:
                saved = check_json_object(context, "the run context")
            except InvalidParamsError:
                pass  # the locked path below fails the run and says why
            else:
                duration_ms = _elapsed_ms(started)
                following, lease = self._continuation(step, decision.dest, delivery, now)
                advanced, next_claim = self._recorder.advance_claimed(
                    session,
                    claim,
                    decision.trigger,
                    decision.dest,
                    saved,
                    now,
                    duration_ms,
                    claim_lease=lease,
                )
                if advanced is Advanced.FENCED:
                    session.rollback()
                    self._drop(step, "fenced")
                    return None
                session.commit()
                if advanced is Advanced.CLAIMED:
                    assert following is not None
                    assert next_claim is not None
                    return _Continued(step, decision, duration_ms, following, next_claim)
                self._completed(step, decision, duration_ms)
                return None
        run = lock_run(session, claim.run_id)
        if not _still_ours(run, claim):
            session.rollback()
            self._drop(step, "fenced")
            return None
        assert run is not None
        decision = decide_outcome(definition, step, _view(run), outcome, now)
        try:
            run.context = check_json_object(context, "the run context")
        except InvalidParamsError as error:
            decision = FailRun(
                f"{step.reason} (the step left a context that is not JSON: {error})",
                error_detail(error),
            )
        if isinstance(decision, FailRun | RetryLater):
            session.rollback()  # the step failed: its domain writes must not land
            failed: Decision = decision
            self._record_failure(step, claim, lambda _run: failed, _elapsed_ms(started))
            return None
        self._apply(session, step, run, decision, now, _elapsed_ms(started))
        session.commit()
        return None

    def _continuation(
        self, step: StepOptions, dest: str, delivery: _Delivery | None, now: datetime
    ) -> tuple[StepOptions | None, datetime | None]:
        """The step this delivery goes on to after entering ``dest``, and its lease.

        Only a step on the same queue and silo (where this worker would have received
        its message anyway), while the delivery is within its ``continue_for``, and
        only if the time left before the delivery's soft limit is the next step's own
        limit or at most ``continue_for`` more. The lease outlasts the delivery's hard
        limit, as a claim's lease outlasts its message's.
        """
        if delivery is None or self._registry.get(step.workflow).is_terminal(dest):
            return None, None
        following = self._registry.step(step.workflow, dest)
        if following.queue != step.queue or following.silo_mode != step.silo_mode:
            return None, None
        left = delivery.time_left_for(following)
        if left is None:
            return None, None
        seconds = left + HARD_LIMIT_MARGIN + self._settings.lease_grace
        return following, now + timedelta(seconds=seconds)

    def _apply(
        self,
        session: Session,
        step: StepOptions,
        run: WorkflowRun,
        decision: Decision,
        now: datetime,
        duration_ms: float,
    ) -> None:
        if isinstance(decision, Advance):
            self._recorder.move(
                session, run, decision.trigger, decision.dest, now=now, duration_ms=duration_ms
            )
            self._completed(step, decision, duration_ms)
        elif isinstance(decision, PollAgain):
            run.polls += 1
            self._recorder.repeat(
                session,
                run,
                "poll",
                now=now,
                not_before=decision.not_before,
                duration_ms=duration_ms,
                detail={"not_before": decision.not_before.isoformat()},
            )
            run.attempt -= 1  # a poll is not an attempt: the next claim counts the same one
            self._metrics.incr("step.polled", tags=_tags(step))
            log.info("step polls again", not_before=decision.not_before.isoformat())

    def _completed(self, step: StepOptions, decision: Advance, duration_ms: float) -> None:
        self._metrics.incr("step.completed", tags=_tags(step))
        self._metrics.timing("step.duration", duration_ms, _tags(step))
        log.info("step completed", trigger=decision.trigger, to=decision.dest)

    def _record_error(
        self, step: StepOptions, claim: Claim, error: Exception, duration_ms: float
    ) -> None:
        def decide(run: WorkflowRun) -> Decision:
            return decide_error(step, _view(run), error, self._clock.now(), self._rng)

        self._record_failure(step, claim, decide, duration_ms, error)

    def _record_failure(
        self,
        step: StepOptions,
        claim: Claim,
        decide: Callable[[WorkflowRun], Decision],
        duration_ms: float,
        error: Exception | None = None,
    ) -> None:
        """In a fresh transaction (the step's own was rolled back): re-lock the run, check
        the step is still ours, and record the retry or the failure."""
        with self._db.transaction() as session:
            run = lock_run(session, claim.run_id)
            if not _still_ours(run, claim):
                if run is not None and _continued_by(run, claim):
                    # the completing commit raised after it landed, claiming the next
                    # step for a handler that will not run: send it as a message
                    run.attempt -= 1
                    self._recorder.dispatch(session, run, now=self._clock.now())
                    log.warning("step completed though its commit raised; next step dispatched")
                self._drop(step, "fenced")
                return
            assert run is not None
            decision = decide(run)
            self._write_failure(session, step, run, decision, duration_ms)
        if isinstance(decision, FailRun):
            report_failure(decision.reason, error)

    def _write_failure(
        self,
        session: Session,
        step: StepOptions,
        run: WorkflowRun,
        decision: Decision,
        duration_ms: float,
    ) -> None:
        now = self._clock.now()
        if isinstance(decision, RetryLater):
            detail = {k: v for k, v in decision.detail.items() if k != "traceback"}
            detail["not_before"] = decision.not_before.isoformat()
            self._recorder.repeat(
                session,
                run,
                "retry",
                now=now,
                not_before=decision.not_before,
                duration_ms=duration_ms,
                detail=detail,
            )
            self._metrics.incr("step.retried", tags=_tags(step))
            log.info(
                "step will be retried",
                not_before=detail["not_before"],
                error_type=detail.get("error_type"),
                error=detail.get("error_message"),
            )
        elif isinstance(decision, FailRun):
            self._recorder.fail(
                session, run, decision.reason, decision.detail, now=now, duration_ms=duration_ms
            )
            self._metrics.incr("step.failed", tags=_tags(step))
            log.warning(
                "run failed",
                reason=decision.reason,
                error_type=decision.detail.get("error_type"),
                error=decision.detail.get("error_message"),
            )

    def _drop(self, step: StepOptions, reason: str) -> None:
        self._metrics.incr("step.dropped", tags={**_tags(step), "reason": reason})
        log.info("message dropped", reason=reason)


#: Seconds a delivery keeps in hand for the time its task spent before ``run_step``.
START_SLACK = 0.05


@dataclass(frozen=True, slots=True)
class _Delivery:
    """One message's task: when it began and when its soft time limit falls (monotonic)."""

    started: float
    soft_deadline: float
    #: What the step tasks' time limits add to each step's own.
    registered: float
    continue_for: float

    @classmethod
    def starting(cls, step: StepOptions, registered: float, continue_for: float) -> _Delivery:
        """A delivery of ``step``, whose task's limits are its own plus ``registered``."""
        now = time.monotonic()
        return cls(now, now + step.time_limit + registered, registered, continue_for)

    def time_left_for(self, step: StepOptions) -> float | None:
        """Seconds left before the soft limit if ``step`` may run on in this delivery:
        within ``continue_for`` of its start, with at least the step's own time limit
        left and at most what the task limits add more. Otherwise ``None``.

        The pool's clock for the limit started a little before this delivery's (when
        it took the message), so the step's limit must fit with ``START_SLACK`` to spare.
        """
        now = time.monotonic()
        left = self.soft_deadline - now
        if now - self.started > self.continue_for:
            return None
        if not step.time_limit + START_SLACK <= left <= step.time_limit + self.registered:
            return None
        return left


@dataclass(frozen=True, slots=True)
class _Continued:
    """A step that completed by claiming the next one, and that next step."""

    finished: StepOptions
    decision: Advance
    duration_ms: float
    step: StepOptions
    claim: Claim


def _continued_by(run: WorkflowRun, claim: Claim) -> bool:
    """Whether the run stands as ``claim``'s own move left it, having claimed the next
    step: one token on, claimed, and carrying the marker only that move could write.

    The rest of the row cannot tell: a signal that moved the run along the same edge,
    followed by another worker's claim, leaves the same state, token and attempt."""
    return (
        run.status == "running"
        and run.claimed
        and run.token == claim.token + 1
        and run.claim_marker == claim.successor_marker
    )


def _stale_reason(run: WorkflowRun | None, step: StepOptions, token: int) -> str | None:
    if run is None:
        return "run_gone"
    if run.status != "running":
        return "not_running"
    if run.workflow != step.workflow or run.state != step.state or run.token != token:
        return "stale_token"
    if run.claimed:
        return "duplicate"
    return None


def _still_ours(run: WorkflowRun | None, claim: Claim) -> bool:
    return run is not None and run.status == "running" and run.claimed and run.token == claim.token


def _view(run: WorkflowRun) -> RunView:
    return RunView(run.state, run.attempt, run.polls, run.state_entered_at)


@functools.cache
def _claim_template() -> ReturningUpdate[Any]:
    run = WorkflowRun
    return (
        update(run)
        .where(
            run.id == bindparam("claim_run_id"),
            run.token == bindparam("claim_token"),
            run.status == "running",
            run.workflow == bindparam("claim_workflow"),
            run.state == bindparam("claim_state"),
            run.claimed.is_(False),
            nothing_asked_at(bindparam("claim_state")),
            run.attempt < bindparam("claim_max_attempts"),
        )
        .values(
            attempt=run.attempt + 1,
            claimed=True,
            lease_expires_at=bindparam("claim_lease", type_=UTCDateTime()),
        )
        .returning(*CLAIM_COLUMNS)
    )


def _claim_view(claim: Claim) -> RunView:
    """The run as its claim saw it: while the claim is ours, only its flags can change."""
    return RunView(claim.state, claim.attempt, claim.polls, claim.state_entered_at)


def _tags(step: StepOptions) -> dict[str, str]:
    return {"workflow": step.workflow, "state": step.state}


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


__all__ = ["StepExecutor", "error_detail"]
