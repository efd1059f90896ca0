"""The engine's own durable tasks for children and Maps: a stopped parent's
``child_policy``, a Map's fill, and a Map's task item.

A Map whose ``time_limit`` is set runs its items as a task of its own,
``statewright.map_item.<workflow>.<state>``, registered with that soft limit (and the
hard limit a margin after it): its deliveries are leased for that long, so an item
whose worker was lost is sent again after its own limit, not the engine's default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from statewright.children import STOP_CHILDREN_TASK as STOP_CHILDREN
from statewright.children import Children
from statewright.instrumentation import HARD_LIMIT_MARGIN
from statewright.joins import Map
from statewright.registry import Registry

if TYPE_CHECKING:
    from statewright.fanout import Fanout

FILL_TASK = "statewright.map_fill"
ITEM_TASK = "statewright.map_item"


def item_task(workflow: str, state: str, spec: Map) -> str:
    """The task that runs the items of Map ``state`` of ``workflow``: its own when it
    declares a time limit, else the engine's shared ``statewright.map_item``."""
    return ITEM_TASK if spec.time_limit is None else f"{ITEM_TASK}.{workflow}.{state}"


def register_child_tasks(
    app: Any,
    registry: Registry,
    children: Children,
    fanout: Fanout,
    queue: str,
    task_base: type,
) -> None:
    """Register ``statewright.stop_children``, ``statewright.map_fill`` and
    ``statewright.map_item`` on ``app``, on the engine's default ``queue``, and an item
    task for each Map of ``registry`` that declares a time limit."""

    def stop_children(run_id: str, policy: str, why: str) -> None:
        children.stop(run_id, policy, why)

    def map_fill(task: Any, map_id: int) -> None:
        fanout.fill(map_id, _retry_of(task))

    common: dict[str, Any] = {"base": task_base, "shared": False, "task_queue": queue}
    app.task(name=STOP_CHILDREN, **common)(stop_children)
    app.task(name=FILL_TASK, bind=True, max_retries=None, **common)(map_fill)
    app.task(name=ITEM_TASK, bind=True, max_retries=None, **common)(_map_item(fanout))
    for step in registry.steps():
        spec = step.map
        if spec is None or spec.time_limit is None:
            continue
        limits = {
            "soft_time_limit": spec.time_limit,
            "time_limit": spec.time_limit + HARD_LIMIT_MARGIN,
        }
        name = item_task(step.workflow, step.state, spec)
        app.task(name=name, bind=True, max_retries=None, **common, **limits)(_map_item(fanout))


def _map_item(fanout: Fanout) -> Callable[..., None]:
    def map_item(task: Any, item_id: int) -> None:
        fanout.run_item(item_id, _retry_of(task))

    return map_item


def _retry_of(task: Any) -> Callable[[float], BaseException]:
    """Celery's ``retry`` of ``task`` after a countdown, as an exception to raise."""

    def again(countdown: float) -> BaseException:
        raised: BaseException = task.retry(countdown=countdown)
        return raised

    return again
