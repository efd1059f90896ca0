"""Child runs at run time: started in a step's transaction, joined where they finish.

A step starts a child with ``ctx.start_child(workflow, params, key=...)``: the child
run, its first step's message and a link row commit with the step, or not at all.
Its idempotency key is the parent run, the visit to the state and ``key`` (none of
them change between attempts or polls), so asking again returns the same child.
When the step commits, the parent's ``children_pending`` grows by the children it
started. Each child's final move (succeeded, failed, cancelled) marks its link and
counts the parent down in the child's own transaction: the one that reaches zero
dispatches the parent's join step if the parent waits in its join state. A paused
parent has its join dispatched when it resumes. When the parent is cancelled or
fails (an abort, say), its workflow's ``child_policy`` is carried out by a durable
task, page by page: cancel the children still running, abort them, or leave them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from statewright.clock import Clock
from statewright.errors import IllegalOperationError, InvalidParamsError
from statewright.metrics import Metrics
from statewright.models.children import WorkflowChild
from statewright.models.engine import WorkflowRun
from statewright.persistence import Database, lock_run
from statewright.recorder import RunRecorder
from statewright.registry import Registry, StepOptions

if TYPE_CHECKING:
    from statewright.context import StepContext
    from statewright.fanout import Fanout
    from statewright.operations import Operations

log = structlog.get_logger("statewright.children")

#: The durable task that carries out a stopped parent's ``child_policy``.
STOP_CHILDREN_TASK = "statewright.stop_children"
MAX_CHILD_KEY = 100
#: Children stopped per transaction by the stop task.
STOP_PAGE = 200
_STARTED = "statewright.children.started"


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """A child run (or a Map item) as its parent sees it."""

    key: str
    run_id: str | None
    workflow: str
    #: ``running``, or how it finished: ``succeeded``, ``failed`` or ``cancelled``; a
    #: failed Map item a redrive queued to run again is ``queued``.
    status: str
    #: A child run's context when it finished; a Map task item's returned value.
    result: Any
    #: Why it failed (a child run's failure reason, or an item's error).
    reason: str | None
    parent_state: str
    position: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "result": self.result,
            "reason": self.reason,
            "parent_state": self.parent_state,
            **({"position": self.position} if self.position is not None else {}),
        }


class Children:
    """Starts child runs, counts their joins down, and stops them with their parent."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        recorder: RunRecorder,
        operations: Operations,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._db = db
        self._registry = registry
        self._recorder = recorder
        self._operations = operations
        self._clock = clock
        self._metrics = metrics
        #: Set by the engine: the Map runtime, which shares the finish hook.
        self.fanout: Fanout | None = None

    # -- starting ------------------------------------------------------------------

    def start(
        self,
        ctx: StepContext,
        visit: int,
        workflow: str,
        params: Mapping[str, Any] | None,
        key: str,
    ) -> str:
        """Start (or find, by ``key``) a child run of ``workflow`` in ``ctx``'s transaction."""
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_CHILD_KEY:
            raise InvalidParamsError(
                f"child key {key!r} is not allowed; use a non-empty string of at most "
                f"{MAX_CHILD_KEY} characters, the same on every attempt of the step"
            )
        session = ctx.session
        detail = {"parent": ctx.run_id, "parent_state": ctx.state, "child": key}
        info, started = self._operations.start_in(
            session,
            workflow,
            dict(params or {}),
            f"child:{ctx.run_id}:{visit}:{key}",
            detail=detail,
        )
        if not started:
            return info.id
        session.add(
            WorkflowChild(
                parent_run_id=ctx.run_id,
                parent_state=ctx.state,
                visit=visit,
                key=key,
                child_run_id=info.id,
                workflow=workflow,
                status="running",
                attempts=0,
                created_at=self._clock.now(),
            )
        )
        self._count_on_commit(session, ctx.run_id)
        self._metrics.incr("child.started", tags={"workflow": ctx.workflow, "child": workflow})
        log.info("child run started", child=info.id, child_workflow=workflow, key=key)
        return info.id

    def _count_on_commit(self, session: Session, parent_id: str) -> None:
        """Add the children started in ``session`` to the parent's count as the step
        commits, where its completion locks the parent's row anyway (not at each start,
        which would hold the lock through the rest of the handler)."""
        counts: dict[str, int] | None = session.info.get(_STARTED)
        if counts is None:
            counts = session.info[_STARTED] = {}

            def before_commit(committing: Session) -> None:
                started = committing.info.pop(_STARTED, {})
                for run_id, count in started.items():
                    committing.execute(
                        update(WorkflowRun)
                        .where(WorkflowRun.id == run_id)
                        .values(children_pending=WorkflowRun.children_pending + count)
                        .execution_options(synchronize_session=False)
                    )

            def after_rollback(rolled_back: Session) -> None:
                rolled_back.info.pop(_STARTED, None)

            event.listen(session, "before_commit", before_commit, once=True)
            event.listen(session, "after_soft_rollback", lambda s, _t: after_rollback(s))
        counts[parent_id] = counts.get(parent_id, 0) + 1

    # -- reading -------------------------------------------------------------------

    def of(self, session: Session, run_id: str, *, limit: int = 1000) -> list[ChildInfo]:
        """The child runs ``run_id``'s steps started (not its Map items), oldest first."""
        child = WorkflowChild
        rows = session.execute(
            select(child, WorkflowRun.status, WorkflowRun.context, WorkflowRun.failure_reason)
            .outerjoin(WorkflowRun, WorkflowRun.id == child.child_run_id)
            .where(child.parent_run_id == run_id, child.map_id.is_(None))
            .order_by(child.id)
            .limit(limit)
        ).all()
        return [_info(link, status, context, reason) for link, status, context, reason in rows]

    # -- holding and releasing a join ---------------------------------------------

    def holds(self, session: Session, run: WorkflowRun, step: StepOptions) -> bool:
        """Whether ``run``, entering or resuming in join or Map state ``step``, waits
        there with no message: its children (or its Map's items) are not all done."""
        if step.map is not None:
            assert self.fanout is not None
            return self.fanout.holds(session, run, step)
        started_now = session.info.get(_STARTED, {}).get(run.id, 0)  # counted at commit
        return step.join and run.children_pending + started_now > 0

    def release(self, session: Session, parent_id: str, state: str, visit: int | None) -> None:
        """Dispatch the parent's join (or Map) step if it waits for it there, unclaimed
        with no message pending (``visit``: only on that visit to the state)."""
        parent = lock_run(session, parent_id)
        if parent is None or parent.status != "running" or parent.state != state:
            return
        if (visit is not None and parent.entry_seq != visit) or parent.claimed:
            return
        if parent.lease_expires_at is not None:
            return  # its step's message is on its way already
        self._recorder.dispatch(session, parent, now=self._clock.now())
        self._metrics.incr("join.released", tags={"workflow": parent.workflow, "state": state})
        log.info("join released", run=parent_id, state=state)

    # -- a run finishing -----------------------------------------------------------

    def finished(
        self,
        session: Session,
        run_id: str,
        status: str,
        reason: str | None = None,
        run: WorkflowRun | None = None,
    ) -> None:
        """``run_id`` has just finished with ``status`` in ``session``'s transaction:
        count it in its parent's join (if it is a child), and carry out its own
        ``child_policy`` (if it stopped with children still running)."""
        link = session.execute(
            update(WorkflowChild)
            .where(WorkflowChild.child_run_id == run_id, WorkflowChild.status == "running")
            .values(status=status, reason=reason, finished_at=self._clock.now())
            .returning(
                WorkflowChild.parent_run_id,
                WorkflowChild.parent_state,
                WorkflowChild.map_id,
            )
            .execution_options(synchronize_session=False)
        ).first()
        if link is not None:
            self._count_down(session, link.parent_run_id, link.parent_state, link.map_id, status)
        if run is not None and status in ("cancelled", "failed"):
            self._stop_children(session, run, status)

    def _count_down(
        self, session: Session, parent_id: str, state: str, map_id: int | None, status: str
    ) -> None:
        if map_id is not None:
            assert self.fanout is not None
            self.fanout.item_finished(session, map_id, failed=status != "succeeded")
            return
        left = session.execute(
            update(WorkflowRun)
            .where(WorkflowRun.id == parent_id)
            .values(children_pending=WorkflowRun.children_pending - 1)
            .returning(WorkflowRun.children_pending, WorkflowRun.state, WorkflowRun.workflow)
            .execution_options(synchronize_session=False)
        ).first()
        if left is None or left.children_pending > 0:
            return
        definition = self._registry.get(left.workflow)
        spec = definition.steps.get(left.state)
        if spec is not None and spec.join:
            self.release(session, parent_id, left.state, None)

    def _stop_children(self, session: Session, run: WorkflowRun, status: str) -> None:
        policy = self._registry.get(run.workflow).child_policy
        if policy == "leave":
            return
        running = session.execute(
            select(WorkflowChild.id)
            .where(
                WorkflowChild.parent_run_id == run.id,
                WorkflowChild.status == "running",
                WorkflowChild.child_run_id.is_not(None),
            )
            .limit(1)
        ).first()
        if running is None:
            return
        self._recorder.enqueue(
            session,
            STOP_CHILDREN_TASK,
            kwargs={"run_id": run.id, "policy": policy, "why": status},
            run_id=run.id,
        )
        log.info("children to be stopped", run=run.id, policy=policy)

    def stop(self, run_id: str, policy: str, why: str) -> int:
        """The stop task: cancel or abort ``run_id``'s children still running, a page
        at a time, each child in its own transaction; returns how many it stopped."""
        stopped, after = 0, 0
        reason = f"Its parent run {run_id} was {'aborted' if why == 'failed' else why}"
        while True:
            with self._db.reads() as session:
                page = session.execute(
                    select(WorkflowChild.id, WorkflowChild.child_run_id)
                    .where(
                        WorkflowChild.parent_run_id == run_id,
                        WorkflowChild.status == "running",
                        WorkflowChild.child_run_id.is_not(None),
                        WorkflowChild.id > after,
                    )
                    .order_by(WorkflowChild.id)
                    .limit(STOP_PAGE)
                ).all()
            for link_id, child_id in page:
                after = link_id
                assert child_id is not None
                try:
                    if policy == "abort":
                        self._operations.abort(child_id, reason=reason)
                    else:
                        self._operations.cancel(child_id)
                except IllegalOperationError:
                    continue  # it finished meanwhile
                stopped += 1
            if len(page) < STOP_PAGE:
                break
        self._metrics.incr("child.stopped", tags={"policy": policy}, value=stopped)
        log.info("children stopped", run=run_id, policy=policy, count=stopped)
        return stopped


@dataclass(frozen=True, slots=True)
class ParentLink:
    """The run that started a child run, and where."""

    run_id: str
    state: str
    key: str
    #: Set when the child is one item of that run's Map.
    position: int | None


def parent_of(session: Session, run_id: str) -> ParentLink | None:
    """The run that started ``run_id``, if a run did."""
    link = session.execute(
        select(WorkflowChild).where(WorkflowChild.child_run_id == run_id)
    ).scalar_one_or_none()
    if link is None:
        return None
    return ParentLink(link.parent_run_id, link.parent_state, link.key, link.position)


def _info(link: WorkflowChild, status: str | None, context: Any, reason: str | None) -> ChildInfo:
    return ChildInfo(
        key=link.key,
        run_id=link.child_run_id,
        workflow=link.workflow,
        status=link.status,
        result=context if context is not None else link.result,
        reason=reason if reason is not None else link.reason,
        parent_state=link.parent_state,
        position=link.position,
    )


__all__ = ["STOP_CHILDREN_TASK", "ChildInfo", "Children", "ParentLink", "parent_of"]
