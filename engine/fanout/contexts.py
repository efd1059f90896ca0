"""What a Map's workflow methods receive: a page's context for its item source, and
an item's context for its ``each`` method."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from statewright.registry import Registry


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


def workflow_method(registry: Registry, workflow: str, name: str) -> Callable[..., Any]:
    """The method ``name`` of ``workflow``'s instance: a Map's source, params or each."""
    method: Callable[..., Any] = getattr(registry.get(workflow).instance, name)
    return method
