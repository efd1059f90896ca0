"""Activation hooks: what a workflow declares to refuse a run becoming active.

A ``Workflow`` method marked ``@on_activate`` gets an ``Activation`` inside the
transaction that makes a run active: its start (after ``setup`` wrote its owning
records, before it enters its first state) and its redrive (before anything of the run
changes). A hook refuses by raising, best an ``IllegalOperationError`` naming what is
in the way; then nothing is written and the start or redrive raises that error. A rule
such as "one active run per owner" lives in one hook, so it holds however a run is
started or redriven (the API, the CLI, the console, a schedule).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sqlalchemy.orm import Session

from statewright.run_end import marked_methods

if TYPE_CHECKING:
    from statewright.definition import Definition
    from statewright.models.engine import WorkflowRun

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Activation:
    """A run about to become active, as its workflow's ``@on_activate`` hooks see it."""

    #: The session of the transaction that starts or redrives the run (lock rows here).
    session: Session
    run_id: str
    workflow: str
    #: ``start`` or ``redrive``.
    how: Literal["start", "redrive"]
    params: Mapping[str, Any]
    business_key: str | None


def on_activate(fn: F) -> F:
    """Mark a workflow method ``(self, activation: Activation) -> None`` to run when a
    run of the workflow is started or redriven; it refuses by raising."""
    fn.__statewright_on_activate__ = True  # type: ignore[attr-defined]
    return fn


@functools.cache
def _hook_names(cls: type) -> tuple[str, ...]:
    """Names of ``cls``'s activation hooks, in declaration order (base first)."""
    return tuple(name for name, _ in marked_methods(cls, "__statewright_on_activate__"))


def activating(
    session: Session, definition: Definition, run: WorkflowRun, how: Literal["start", "redrive"]
) -> None:
    """Call ``definition``'s activation hooks for ``run``, which becomes active in
    ``session``'s transaction; whatever a hook raises refuses it."""
    cls: type = type(definition.instance)
    names = _hook_names(cls)
    if not names:
        return
    activation = Activation(
        session=session,
        run_id=run.id,
        workflow=run.workflow,
        how=how,
        params=run.params,
        business_key=run.business_key,
    )
    for name in names:
        getattr(definition.instance, name)(activation)
