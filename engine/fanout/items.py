"""A Map's task items: each delivery of ``statewright.map_item`` runs the workflow's
``each`` method on one item and commits the item's end, its Map's count and its
task's done mark together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from celery.exceptions import Retry
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from statewright.clock import Clock
from statewright.deliveries import DeliverySuperseded, TaskDelivery, current_delivery
from statewright.errors import InvalidParamsError
from statewright.fanout.contexts import ItemContext, workflow_method
from statewright.fanout.join import MapJoin
from statewright.joins import Map
from statewright.jsonvalues import check_json_object
from statewright.metrics import Metrics
from statewright.models.children import WorkflowChild
from statewright.models.engine import WorkflowRun
from statewright.persistence import Database
from statewright.recorder import RunRecorder
from statewright.redaction import redact_text
from statewright.registry import Registry

log = structlog.get_logger("statewright.fanout")


class TaskItems:
    """Runs a Map's task items, each attempt one delivery of its durable task."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        recorder: RunRecorder,
        join: MapJoin,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._db = db
        self._registry = registry
        self._recorder = recorder
        self._join = join
        self._clock = clock
        self._metrics = metrics

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
                    self._dropped(session, delivery)
                    return
                link, parent, spec = found
                workflow = parent.workflow
                self._attempt(session, link, parent, spec, attempt)
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

    def _attempt(
        self, session: Session, link: WorkflowChild, parent: WorkflowRun, spec: Map, attempt: int
    ) -> None:
        """Run ``each`` on the item and settle it as succeeded; or settle it without
        running: cancelled (its run stopped) or failed (its attempts are spent)."""
        if self._stopped(parent):
            reason = f"its run was {parent.status} before the item ran"
            self._settle(session, link, attempt, "cancelled", None, reason)
            return
        if attempt > spec.attempts:
            reason = "worker lost: the item's attempts are spent"
            self._settle(session, link, attempt, "failed", None, reason)
            return
        each = workflow_method(self._registry, parent.workflow, spec.each or "")
        result = each(self._item_context(session, link, parent, attempt))
        self._settle(session, link, attempt, "succeeded", result, None)

    def _dropped(self, session: Session, delivery: TaskDelivery | None) -> None:
        """The item has finished already (or is gone): its task is done."""
        self._metrics.incr("map.item_dropped")
        if delivery is not None:
            delivery.done(session)

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
        self._join.item_finished(session, ended.map_id, failed=status != "succeeded")
        self._metrics.incr("map.item_finished", tags={"status": status})
