"""Map at run time: fan out over items page by page, join where the last one commits.

Entering a Map state writes its ``workflow_maps`` row and a durable fill task, and the
run waits there with no message. The fill task locks the Map's row, asks the item
source for the next page (no more items than there is room for under
``concurrency``), and starts them: child runs, or durable ``statewright.map_item``
tasks. Each item's completing transaction (the child's final move, or the item
task's own) runs ``UPDATE workflow_maps SET done = done + 1 ... RETURNING``: the item
that makes ``done == started`` with the source exhausted dispatches the parent's Map
step in that same transaction; an item that leaves room for a page asks for the next
fill. No process polls, and nothing counts outside the database. The Map step then
takes ``on_done``, or ``on_failed`` (or fails the run) past the tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from celery.exceptions import Retry
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from statewright import lifecycle
from statewright.children import STOP_CHILDREN_TASK as STOP_CHILDREN
from statewright.children import Children
from statewright.clock import Clock
from statewright.deliveries import DeliverySuperseded, current_delivery
from statewright.errors import InvalidParamsError, PermanentError
from statewright.joins import Map
from statewright.jsonvalues import check_json_object
from statewright.metrics import Metrics
from statewright.models.children import WorkflowChild, WorkflowMap
from statewright.models.engine import WorkflowRun
from statewright.persistence import Database, lock_run
from statewright.recorder import RunRecorder
from statewright.redaction import redact_text
from statewright.registry import Registry, StepOptions

if TYPE_CHECKING:
    from statewright.context import StepContext
    from statewright.operations import Operations

log = structlog.get_logger("statewright.fanout")

FILL_TASK = "statewright.map_fill"
ITEM_TASK = "statewright.map_item"
#: Deliveries of a fill before its run fails with the fill's error.
FILL_ATTEMPTS = 8
#: Failed items the Map step's failure reason quotes.
QUOTED_FAILURES = 3


@dataclass(slots=True)
class PageContext:
    """What a Map's item source receives: the run's params and context, a session to
    read from (it must not write), and ``after``: the last item of the page before
    (``None`` for the first), for a source that pages by key rather than by offset."""

    run_id: str
    workflow: str
    state: str
    params: dict[str, Any]
    context: dict[str, Any]
    session: Session
    now: datetime
    after: Any = None


@dataclass(slots=True)
class ItemContext:
    """What a Map's ``each`` method receives for one item.

    Writes through ``session`` commit together with the item's completion (and its
    join's count), or not at all. ``idempotency_key`` is the same on every attempt.
    """

    run_id: str
    workflow: str
    state: str
    item: Any
    position: int
    attempt: int
    params: dict[str, Any]
    #: The parent run's context (read only: an item cannot change it).
    context: dict[str, Any]
    session: Session
    now: datetime
    idempotency_key: str
    log: Any = field(default=None)
    _enqueue: Callable[..., None] | None = field(default=None, repr=False)

    def enqueue(self, task: str, **kwargs: Any) -> None:
        """Dispatch ``task`` (a task of the workflow, or a full task name) after the item
        commits; nothing is sent if the item fails."""
        assert self._enqueue is not None
        name = task if "." in task else f"{self.workflow}.{task}"
        self._enqueue(self.session, name, kwargs=kwargs, run_id=self.run_id)


@dataclass(frozen=True, slots=True)
class MapInfo:
    """One visit of a run to a Map state, as it stands."""

    state: str
    visit: int
    concurrency: int
    started: int
    done: int
    failed: int
    exhausted: bool
    finished_at: datetime | None

    @property
    def in_flight(self) -> int:
        return self.started - self.done

    @property
    def complete(self) -> bool:
        return self.exhausted and self.done == self.started

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "visit": self.visit,
            "concurrency": self.concurrency,
            "started": self.started,
            "done": self.done,
            "failed": self.failed,
            "in_flight": self.in_flight,
            "exhausted": self.exhausted,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }

    @classmethod
    def of(cls, row: WorkflowMap) -> MapInfo:
        return cls(
            row.state,
            row.visit,
            row.concurrency,
            row.started,
            row.done,
            row.failed,
            row.exhausted,
            row.finished_at,
        )


@dataclass(frozen=True, slots=True)
class FailedItem:
    """A Map item that failed, and why."""

    position: int
    key: str
    run_id: str | None
    item: Any
    reason: str | None
    attempts: int

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "run_id": self.run_id,
            "item": self.item,
            "reason": self.reason,
            "attempts": self.attempts,
        }


class Fanout:
    """Fills Maps, runs their task items, and counts each item's end in its commit."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        recorder: RunRecorder,
        operations: Operations,
        children: Children,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._db = db
        self._registry = registry
        self._recorder = recorder
        self._operations = operations
        self._children = children
        self._clock = clock
        self._metrics = metrics

    # -- entering and resuming -----------------------------------------------------

    def holds(self, session: Session, run: WorkflowRun, step: StepOptions) -> bool:
        """The locked ``run`` enters (or resumes in) Map state ``step``: write its Map and
        a fill the first time; ask for a fill on a resume. Whether it waits there (the
        Map has items left) or its step may run now (every item has finished).

        The Map's row is only read here: the last item locks it before the run, and
        a fill is harmless when none is needed."""
        spec = step.map
        assert spec is not None
        row = session.execute(
            select(WorkflowMap).where(
                WorkflowMap.parent_run_id == run.id, WorkflowMap.visit == run.entry_seq
            )
        ).scalar_one_or_none()
        if row is not None and MapInfo.of(row).complete:
            return False
        if row is None:
            row = WorkflowMap(
                parent_run_id=run.id,
                state=run.state,
                visit=run.entry_seq,
                queue=step.queue,
                concurrency=spec.concurrency,
                next_offset=0,
                started=0,
                done=0,
                failed=0,
                exhausted=False,
                filling=True,
                created_at=self._clock.now(),
            )
            session.add(row)
            session.flush()
        self._ask_fill(session, row.id, run.id, row.queue)
        return True

    def _ask_fill(self, session: Session, map_id: int, run_id: str, queue: str) -> None:
        kwargs = {"map_id": map_id}
        self._recorder.enqueue(session, FILL_TASK, kwargs=kwargs, run_id=run_id, queue=queue)

    # -- filling -------------------------------------------------------------------

    def fill(self, map_id: int, retry: Callable[[float], BaseException] | None = None) -> int:
        """Start the Map's next items, a page per transaction, up to its concurrency;
        returns how many it started. Pages that committed stay started: after an error
        (the source's, the database's) the fill is tried again from where it was, and
        after ``FILL_ATTEMPTS`` the Map's run fails with the error."""
        started = 0
        while True:
            try:
                with self._db.transaction() as session:
                    count, more = self._fill_page(session, map_id)
            except Exception as error:
                delivery = current_delivery()
                attempt = delivery.attempt if delivery is not None else FILL_ATTEMPTS
                if retry is not None and attempt < FILL_ATTEMPTS:
                    log.warning("Map fill failed; tried again", map=map_id, error=repr(error))
                    raise retry(min(60.0, 2.0 ** (attempt - 1))) from error
                self._fail_map(map_id, error)
                return started
            started += count
            if not more:
                return started

    def _fail_map(self, map_id: int, error: Exception) -> None:
        """The Map's source (or its fill) keeps failing: fail its run, saying why. A run
        paused meanwhile is left as it is: its resume asks for the fill again."""
        with self._db.transaction() as session:
            row = session.get(WorkflowMap, map_id)
            parent = lock_run(session, row.parent_run_id) if row is not None else None
            if row is None or parent is None or parent.status != lifecycle.RUNNING:
                return
            if (parent.state, parent.entry_seq) != (row.state, row.visit):
                return
            reason = f"The items of {row.state!r} could not be listed or started: {error}"
            detail = {"error_type": type(error).__name__, "error_message": str(error)}
            failure = lifecycle.Fail(reason, detail)
            self._recorder.fail(session, parent, failure, now=self._clock.now())
        log.warning("Map fill gave up; run failed", map=map_id, error=repr(error))

    def _fill_page(self, session: Session, map_id: int) -> tuple[int, bool]:
        row = session.execute(
            select(WorkflowMap).where(WorkflowMap.id == map_id).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            return 0, False
        parent = session.get(WorkflowRun, row.parent_run_id)
        room = row.concurrency - (row.started - row.done)
        if (
            parent is None
            or parent.status != "running"
            or (parent.state, parent.entry_seq) != (row.state, row.visit)
            or row.exhausted
            or room <= 0
        ):
            row.filling = False  # a resume asks again; a finished parent needs no more
            return 0, False
        spec = self._registry.get(parent.workflow).map_of(row.state)
        assert spec is not None
        limit = min(room, spec.page_size)
        items = self._page(session, parent, spec, row, limit)
        links = [
            self._start_item(session, parent, row, spec, row.next_offset + index, item)
            for index, item in enumerate(items)
        ]
        if spec.each is not None and links:
            session.flush()  # the page's item rows in one go, then a task for each
            for link in links:
                kwargs = {"item_id": link.id}
                self._recorder.enqueue(
                    session, ITEM_TASK, kwargs=kwargs, run_id=parent.id, queue=row.queue
                )
        if items:
            row.last_item = links[-1].item if spec.each is not None else _json(items[-1])
        row.next_offset += len(items)
        row.started += len(items)
        row.exhausted = len(items) < limit
        more = not row.exhausted and room > len(items)
        if not more:
            row.filling = False
        self._metrics.incr("map.started", value=len(items), tags={"workflow": parent.workflow})
        if row.exhausted and row.done == row.started:  # the source ended with nothing left
            self._finish(session, row)
        return len(items), more

    def _page(
        self, session: Session, parent: WorkflowRun, spec: Map, row: WorkflowMap, limit: int
    ) -> Sequence[Any]:
        offset = row.next_offset
        source = self._method(parent.workflow, spec.items)
        ctx = PageContext(
            parent.id,
            parent.workflow,
            parent.state,
            dict(parent.params),
            dict(parent.context),
            session,
            self._clock.now(),
            row.last_item,
        )
        items = list(source(ctx, offset, limit))
        if len(items) > limit:
            raise InvalidParamsError(
                f"Map source {spec.items!r} of workflow {parent.workflow!r} gave "
                f"{len(items)} items when asked for at most {limit} (offset {offset})"
            )
        return items

    def _start_item(
        self,
        session: Session,
        parent: WorkflowRun,
        row: WorkflowMap,
        spec: Map,
        position: int,
        item: Any,
    ) -> WorkflowChild:
        link = WorkflowChild(
            parent_run_id=parent.id,
            parent_state=row.state,
            visit=row.visit,
            key=str(position),
            map_id=row.id,
            position=position,
            workflow=spec.workflow or f"{parent.workflow}.{spec.each}",
            status="running",
            attempts=0,
            created_at=self._clock.now(),
        )
        if spec.workflow is not None:
            params = self._item_params(parent, spec, item)
            detail = {"parent": parent.id, "parent_state": row.state, "map_item": position}
            key = f"map:{parent.id}:{row.visit}:{position}"
            child, _ = self._operations.start_in(session, spec.workflow, params, key, detail=detail)
            link.child_run_id = child.id
        else:
            link.item = check_json_object({"item": item}, "a Map item")["item"]
        session.add(link)
        return link

    def _item_params(self, parent: WorkflowRun, spec: Map, item: Any) -> dict[str, Any]:
        if spec.params is not None:
            made = self._method(parent.workflow, spec.params)(item)
            return check_json_object(made, "a Map item's params")
        if isinstance(item, dict):
            return item
        return {"item": item}

    def _method(self, workflow: str, name: str) -> Callable[..., Any]:
        method: Callable[..., Any] = getattr(self._registry.get(workflow).instance, name)
        return method

    # -- an item finishing ---------------------------------------------------------

    def item_finished(self, session: Session, map_id: int, *, failed: bool) -> None:
        """Count one finished item in its own completing transaction; the last one
        dispatches the parent's Map step, one that leaves room asks for a fill."""
        table = WorkflowMap
        row = session.execute(
            update(table)
            .where(table.id == map_id)
            .values(done=table.done + 1, failed=table.failed + (1 if failed else 0))
            .returning(
                table.parent_run_id,
                table.state,
                table.visit,
                table.concurrency,
                table.started,
                table.done,
                table.exhausted,
                table.filling,
                table.queue,
            )
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            return
        if row.exhausted and row.done == row.started:
            session.execute(
                update(table)
                .where(table.id == map_id)
                .values(finished_at=self._clock.now())
                .execution_options(synchronize_session=False)
            )
            self._metrics.incr("map.joined", tags={"state": row.state})
            self._children.release(session, row.parent_run_id, row.state, row.visit)
            return
        room = row.concurrency - (row.started - row.done)
        if not row.exhausted and not row.filling and room >= _low_water(row.concurrency):
            session.execute(
                update(table)
                .where(table.id == map_id)
                .values(filling=True)
                .execution_options(synchronize_session=False)
            )
            self._ask_fill(session, map_id, row.parent_run_id, row.queue)

    def _finish(self, session: Session, row: WorkflowMap) -> None:
        row.finished_at = self._clock.now()
        session.flush()
        self._children.release(session, row.parent_run_id, row.state, row.visit)

    # -- task items ----------------------------------------------------------------

    def run_item(self, item_id: int, retry: Callable[[float], BaseException]) -> None:
        """One delivery of a task item: run ``each`` with a session and commit its writes
        with the item's end, its join's count and its task's done mark. The item's
        attempt is its task's delivery attempt (counted when the worker took it, so a
        lost worker's attempt counts too). An error is tried again (``retry`` raises
        Celery's ``Retry``) until the Map's attempts are spent; then the item fails
        with its error as the reason, counted the same way.
        """
        delivery = current_delivery()
        attempt = delivery.attempt if delivery is not None else 1
        spec: Map | None = None
        workflow = ""
        session = self._db.sessions()
        try:
            with session.begin():
                found = self._item(session, item_id)
                if found is None:
                    self._metrics.incr("map.item_dropped")
                    if delivery is not None:
                        delivery.done(session)
                    return
                link, parent, spec = found
                workflow = parent.workflow
                if self._stopped(parent):
                    reason = f"its run was {parent.status} before the item ran"
                    self._settle(session, link, attempt, "cancelled", None, reason)
                    return
                if attempt > spec.attempts:
                    reason = "worker lost: the item's attempts are spent"
                    self._settle(session, link, attempt, "failed", None, reason)
                    return
                result = self._method(parent.workflow, spec.each or "")(
                    self._item_context(session, link, parent, attempt)
                )
                self._settle(session, link, attempt, "succeeded", result, None)
        except (DeliverySuperseded, Retry):
            raise
        except Exception as error:
            if spec is None:
                raise  # not a Map item this engine can run: the task gives up, logged
            if attempt < spec.attempts:
                self._metrics.incr("map.item_retried", tags={"workflow": workflow})
                raise retry(min(60.0, 2.0 ** (attempt - 1))) from error
            self._end_item(item_id, attempt, f"{type(error).__name__}: {error}")
        finally:
            session.close()

    def _stopped(self, parent: WorkflowRun) -> bool:
        """Whether the item's run was cancelled or failed with a policy that stops its
        items: those not yet run end as cancelled instead of running."""
        if parent.status not in ("cancelled", "failed"):
            return False
        return self._registry.get(parent.workflow).child_policy != "leave"

    def _item(
        self, session: Session, item_id: int
    ) -> tuple[WorkflowChild, WorkflowRun, Map] | None:
        """The item (if still running), its parent run and its Map."""
        found = session.execute(
            select(WorkflowChild, WorkflowRun)
            .join(WorkflowRun, WorkflowRun.id == WorkflowChild.parent_run_id)
            .where(WorkflowChild.id == item_id, WorkflowChild.status == "running")
        ).first()
        if found is None:
            return None
        link, parent = found
        spec = self._registry.get(parent.workflow).map_of(link.parent_state)
        if spec is None or spec.each is None:
            raise InvalidParamsError(
                f"Map item {item_id} belongs to state {link.parent_state!r} of workflow "
                f"{parent.workflow!r}, which is no longer a Map over tasks"
            )
        return link, parent, spec

    def _item_context(
        self, session: Session, link: WorkflowChild, parent: WorkflowRun, attempt: int
    ) -> ItemContext:
        return ItemContext(
            run_id=link.parent_run_id,
            workflow=parent.workflow,
            state=link.parent_state,
            item=link.item,
            position=link.position or 0,
            attempt=attempt,
            params=dict(parent.params),
            context=dict(parent.context),
            session=session,
            now=self._clock.now(),
            idempotency_key=f"{link.parent_run_id}:{link.parent_state}:{link.visit}:"
            f"{link.position}",
            log=structlog.get_logger("statewright.item"),
            _enqueue=self._recorder.enqueue,
        )

    def _end_item(self, item_id: int, attempt: int, reason: str) -> None:
        """The item failed for good: its end, count and done mark in a fresh transaction
        (the failed attempt's writes were rolled back)."""
        with self._db.transaction() as session:
            found = self._item(session, item_id)
            if found is None:
                return
            self._settle(session, found[0], attempt, "failed", None, reason)
        log.warning("Map item failed", item=item_id, reason=reason)

    def _settle(
        self,
        session: Session,
        link: WorkflowChild,
        attempt: int,
        status: str,
        result: Any,
        reason: str | None,
    ) -> None:
        """Mark the item finished, count it, and mark its task done, all in ``session``'s
        transaction (a delivery that lost the task to a newer one rolls it all back)."""
        if result is not None:
            result = check_json_object({"result": result}, "a Map item's result")["result"]
        delivery = current_delivery()
        if delivery is not None:
            delivery.done(session)
        ended = session.execute(
            update(WorkflowChild)
            .where(WorkflowChild.id == link.id, WorkflowChild.status == "running")
            .values(
                status=status,
                attempts=attempt,
                result=result,
                reason=redact_text(reason) if reason else None,
                finished_at=self._clock.now(),
            )
            .returning(WorkflowChild.map_id)
            .execution_options(synchronize_session=False)
        ).first()
        if ended is None:
            raise DeliverySuperseded(f"Map item {link.id} has finished already")
        assert ended.map_id is not None
        self.item_finished(session, ended.map_id, failed=status != "succeeded")
        self._metrics.incr("map.item_finished", tags={"status": status})

    # -- reading -------------------------------------------------------------------


def maps_of(session: Session, run_id: str) -> list[MapInfo]:
    """The run's Maps, one per visit to a Map state, oldest first."""
    rows = session.execute(
        select(WorkflowMap).where(WorkflowMap.parent_run_id == run_id).order_by(WorkflowMap.visit)
    ).scalars()
    return [MapInfo.of(row) for row in rows]


def failed_items(
    session: Session, run_id: str, *, after: int = -1, limit: int = 100, visit: int | None = None
) -> list[FailedItem]:
    """The run's failed Map items with their reasons, by position, from ``after`` on
    (of its latest Map, or of the visit given)."""
    if visit is None:
        visit = session.execute(
            select(func.max(WorkflowMap.visit)).where(WorkflowMap.parent_run_id == run_id)
        ).scalar()
        if visit is None:
            return []
    map_id = session.execute(
        select(WorkflowMap.id).where(
            WorkflowMap.parent_run_id == run_id, WorkflowMap.visit == visit
        )
    ).scalar()
    child = WorkflowChild
    rows = session.execute(
        select(child)
        .where(child.map_id == map_id, child.status.in_(("failed", "cancelled")))
        .where(child.position > after)
        .order_by(child.position)
        .limit(limit)
    ).scalars()
    return [
        FailedItem(r.position or 0, r.key, r.child_run_id, r.item, r.reason, r.attempts)
        for r in rows
    ]


def map_outcome(ctx: StepContext, spec: Map) -> str:
    """The Map step: every item has finished; within the tolerance take ``on_done``,
    past it ``on_failed``, or fail the run naming the first failed items."""
    row = ctx.session.execute(
        select(WorkflowMap)
        .where(WorkflowMap.parent_run_id == ctx.run_id, WorkflowMap.state == ctx.state)
        .order_by(WorkflowMap.visit.desc())
        .limit(1)
    ).scalar_one()
    summary = {"items": row.started, "failed": row.failed}
    ctx.context.setdefault("maps", {})[ctx.state] = summary
    if spec.tolerance.allows(row.failed, row.started):
        return spec.on_done
    if spec.on_failed is not None:
        return spec.on_failed
    quoted = failed_items(ctx.session, ctx.run_id, visit=row.visit, limit=QUOTED_FAILURES)
    examples = "; ".join(f"item {f.position}: {f.reason}" for f in quoted)
    raise PermanentError(
        f"{row.failed} of {row.started} items of {ctx.state!r} failed, past the tolerance "
        f"({spec.tolerance.describe()}); first: {examples}"
    )


def _json(item: Any) -> Any:
    """An item as it is kept between pages (a child run's item, which is not stored)."""
    return check_json_object({"item": item}, "a Map item")["item"]


def _low_water(concurrency: int) -> int:
    """Free slots that make a finishing item ask for the next page: a quarter of the
    bound, so a Map of many items fills in pages, not one item at a time."""
    return max(1, concurrency // 4)


__all__ = [
    "FILL_TASK",
    "ITEM_TASK",
    "FailedItem",
    "Fanout",
    "ItemContext",
    "MapInfo",
    "PageContext",
    "failed_items",
    "maps_of",
]


def register_child_tasks(
    app: Any, children: Children, fanout: Fanout, queue: str, task_base: type
) -> None:
    """The engine's own durable tasks for children and Maps: a stopped parent's
    ``child_policy``, a Map's fill, and a Map's task item."""

    def stop_children(run_id: str, policy: str, why: str) -> None:
        children.stop(run_id, policy, why)

    def map_fill(task: Any, map_id: int) -> None:
        def again(countdown: float) -> BaseException:
            raised: BaseException = task.retry(countdown=countdown)
            return raised

        fanout.fill(map_id, again)

    def map_item(task: Any, item_id: int) -> None:
        def again(countdown: float) -> BaseException:
            raised: BaseException = task.retry(countdown=countdown)
            return raised

        fanout.run_item(item_id, again)

    common: dict[str, Any] = {"base": task_base, "shared": False, "task_queue": queue}
    app.task(name=STOP_CHILDREN, **common)(stop_children)
    app.task(name=FILL_TASK, bind=True, max_retries=None, **common)(map_fill)
    app.task(name=ITEM_TASK, bind=True, max_retries=None, **common)(map_item)
