"""Entering a Map state and filling it: its row, its fill task, and its items started
a page at a time (child runs, or durable task items), no more than ``concurrency``
in flight."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from statewright import lifecycle
from statewright.clock import Clock
from statewright.deliveries import current_delivery
from statewright.errors import InvalidParamsError
from statewright.fanout.contexts import PageContext, workflow_method
from statewright.fanout.join import MapJoin
from statewright.fanout.reading import complete, has_more
from statewright.fanout.redrive import MapRedrive
from statewright.fanout.tasks import item_task
from statewright.joins import Map
from statewright.jsonvalues import check_json_object
from statewright.metrics import Metrics
from statewright.models.children import WorkflowChild, WorkflowMap
from statewright.models.engine import WorkflowRun
from statewright.persistence import Database, lock_run
from statewright.recorder import RunRecorder
from statewright.registry import Registry, StepOptions

if TYPE_CHECKING:
    from statewright.operations import Operations

log = structlog.get_logger("statewright.fanout")

#: Deliveries of a fill before its run fails with the fill's error.
FILL_ATTEMPTS = 8


class MapFill:
    """Writes a Map when its run enters it and starts its items page by page."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        recorder: RunRecorder,
        operations: Operations,
        join: MapJoin,
        redrive: MapRedrive,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._db = db
        self._registry = registry
        self._recorder = recorder
        self._operations = operations
        self._join = join
        self._redrive = redrive
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
        if row is not None and complete(row):
            return False
        if row is None:
            row = self._new_map(run, step, spec)
            session.add(row)
            session.flush()
        self._join.ask_fill(session, row.id, run.id, row.queue)
        return True

    def _new_map(self, run: WorkflowRun, step: StepOptions, spec: Map) -> WorkflowMap:
        return WorkflowMap(
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
        """Start one page in the Map's locked row: how many, and whether room is left."""
        row = session.execute(
            select(WorkflowMap).where(WorkflowMap.id == map_id).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            return 0, False
        parent = session.get(WorkflowRun, row.parent_run_id)
        room = row.concurrency - (row.started - row.done)
        if parent is None or not _fillable(parent, row, room):
            row.filling = False  # a resume asks again; a finished parent needs no more
            return 0, False
        spec = self._registry.get(parent.workflow).map_of(row.state)
        assert spec is not None
        limit = min(room, spec.page_size)
        if row.started < row.next_offset:  # failed items a redrive queued go first
            count = self._redrive.restart(session, parent, row, spec, limit)
        else:
            items = self._page(session, parent, spec, row, limit)
            self._start_page(session, parent, row, spec, items)
            count = len(items)
            row.next_offset += count
            row.started += count
            row.exhausted = count < limit
            self._metrics.incr("map.started", value=count, tags={"workflow": parent.workflow})
        more = has_more(row) and room > count
        if not more:
            row.filling = False
        if complete(row):  # nothing left to start and every item done
            self._join.finish(session, row)
        return count, more

    def _page(
        self, session: Session, parent: WorkflowRun, spec: Map, row: WorkflowMap, limit: int
    ) -> Sequence[Any]:
        """The source's next page of at most ``limit`` items."""
        offset = row.next_offset
        source = workflow_method(self._registry, parent.workflow, spec.items)
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

    def _start_page(
        self,
        session: Session,
        parent: WorkflowRun,
        row: WorkflowMap,
        spec: Map,
        items: Sequence[Any],
    ) -> None:
        """Start the page's items (a task for each task item) and keep its last item."""
        links = [
            self._start_item(session, parent, row, spec, row.next_offset + index, item)
            for index, item in enumerate(items)
        ]
        if spec.each is not None and links:
            session.flush()  # the page's item rows in one go, then a task for each
            task = item_task(parent.workflow, row.state, spec)
            for link in links:
                kwargs = {"item_id": link.id}
                self._recorder.enqueue(
                    session, task, kwargs=kwargs, run_id=parent.id, queue=row.queue
                )
        if items:
            row.last_item = links[-1].item if spec.each is not None else _json(items[-1])

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
            link.item = _json(item)
        session.add(link)
        return link

    def _item_params(self, parent: WorkflowRun, spec: Map, item: Any) -> dict[str, Any]:
        if spec.params is not None:
            made = workflow_method(self._registry, parent.workflow, spec.params)(item)
            return check_json_object(made, "a Map item's params")
        if isinstance(item, dict):
            return item
        return {"item": item}


def _fillable(parent: WorkflowRun, row: WorkflowMap, room: int) -> bool:
    """Whether the Map may start items: its run is running in it, it has items to
    start, and it has room under its concurrency."""
    return (
        parent.status == "running"
        and (parent.state, parent.entry_seq) == (row.state, row.visit)
        and has_more(row)
        and room > 0
    )


def _json(item: Any) -> Any:
    """An item as it is kept (a task item's) or kept between pages (a child run's)."""
    return check_json_object({"item": item}, "a Map item")["item"]
