"""The engine's own durable tasks for children and Maps: a stopped parent's
``child_policy``, a Map's fill, and a Map's task item."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statewright.children import STOP_CHILDREN_TASK as STOP_CHILDREN
from statewright.children import Children

if TYPE_CHECKING:
    from statewright.fanout import Fanout

FILL_TASK = "statewright.map_fill"
ITEM_TASK = "statewright.map_item"


def register_child_tasks(
    app: Any, children: Children, fanout: Fanout, queue: str, task_base: type
) -> None:
    """Register ``statewright.stop_children``, ``statewright.map_fill`` and
    ``statewright.map_item`` on ``app``, on the engine's default ``queue``."""

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
