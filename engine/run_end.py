"""Lifecycle hooks: what a workflow declares to happen when a run ends.

A ``Workflow`` method marked ``@on_end("cancelled", "aborted")`` gets a ``RunEnd`` when
a run of that workflow ends so, with ``end.session`` inside the transaction that records
the ending: the hook's domain writes (an owning record's status, say) commit with it or
not at all.

Endings: ``succeeded`` (a terminal state reached), ``failed`` (a step's error, its
retries spent, a lost worker, a deadline passed), ``cancelled`` and ``aborted`` (an
operator's abort; the run's status is ``failed``).

A hook that raises (``LifecycleHookError`` names it):

- on ``succeeded``, ``cancelled`` and ``aborted`` the whole change rolls back: a step's
  completion is retried like a step that raised; ``cancel``/``abort``/``signal`` raise
  to their caller and the run stays as it was; a cancel applied at a step boundary is
  applied again at the next delivery;
- on ``failed`` the failure still commits (a run must not be left half-ended, nor fail
  over and over), the hook's own writes roll back to a savepoint, and the run's
  ``failure_detail["on_end_error"]`` says what the hook raised.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from statewright.errors import DefinitionError, LifecycleHookError
from statewright.redaction import redact_text

if TYPE_CHECKING:
    from statewright.context import Claim
    from statewright.definition import Definition
    from statewright.models.engine import WorkflowRun

log = structlog.get_logger("statewright.run_end")

#: The ways a run ends, as ``@on_end`` names them.
ENDINGS = ("succeeded", "failed", "cancelled", "aborted")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class RunEnd:
    """A run that is ending, as its workflow's ``@on_end`` hooks see it."""

    #: The session of the transaction that records the ending: write domain rows here.
    session: Session
    run_id: str
    workflow: str
    #: ``succeeded``, ``failed``, ``cancelled`` or ``aborted``.
    status: str
    #: The state the run ended in (a terminal state when it succeeded).
    state: str
    #: Why it failed or was aborted, for people; ``None`` otherwise.
    reason: str | None
    params: Mapping[str, Any]
    context: Mapping[str, Any]
    business_key: str | None


def on_end(*endings: str) -> Callable[[F], F]:
    """Mark a workflow method ``(self, end: RunEnd) -> None`` to run when a run ends in
    one of ``endings`` (``succeeded``, ``failed``, ``cancelled``, ``aborted``)."""
    if not endings:
        raise DefinitionError(f"on_end needs at least one ending; allowed: {', '.join(ENDINGS)}")
    for ending in endings:
        if ending not in ENDINGS:
            raise DefinitionError(f"on_end ending {ending!r} is not one of: {', '.join(ENDINGS)}")

    def mark(fn: F) -> F:
        fn.__statewright_on_end__ = tuple(endings)  # type: ignore[attr-defined]
        return fn

    return mark


def marked_methods(cls: type, marker: str) -> list[tuple[str, Any]]:
    """``(name, mark)`` of ``cls``'s methods carrying the attribute ``marker``, in
    declaration order, base first (a name counts once, with its first mark): how the
    ``@on_end`` and ``@on_activate`` hooks are found."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            mark = getattr(value, marker, None)
            if mark is not None and mark is not False and name not in found:
                found[name] = mark
    return list(found.items())


@functools.cache
def _hook_names(cls: type) -> Mapping[str, tuple[str, ...]]:
    """Names of ``cls``'s hook methods by ending, in declaration order (base first)."""
    found: dict[str, list[str]] = {ending: [] for ending in ENDINGS}
    for name, endings in marked_methods(cls, "__statewright_on_end__"):
        for ending in endings:
            found[ending].append(name)
    return {ending: tuple(names) for ending, names in found.items()}


def hooks(definition: Definition, ending: str) -> list[Callable[[RunEnd], None]]:
    """The bound hooks of ``definition``'s (configured) workflow for ``ending``."""
    instance = definition.instance
    cls: type = type(instance)
    return [getattr(instance, name) for name in _hook_names(cls)[ending]]


def run_ended(session: Session, definition: Definition, run: WorkflowRun, ending: str) -> None:
    """Call the hooks for a run ending now (its row already says so) in ``session``."""
    found = hooks(definition, ending)
    if not found:
        return
    end = RunEnd(
        session=session,
        run_id=run.id,
        workflow=run.workflow,
        status=ending,
        state=run.state,
        reason=run.failure_reason if ending in ("failed", "aborted") else None,
        params=run.params,
        context=run.context,
        business_key=run.business_key,
    )
    if ending != "failed":
        _call(found, end)
        return
    error = _call_in_savepoint(found, end)
    if error is not None:
        # stored like the failure it joins: redacted (a hook's error may quote a secret)
        on_end_error = redact_text(str(error))
        run.failure_detail = {**(run.failure_detail or {}), "on_end_error": on_end_error}


def claimed_run_succeeded(
    session: Session, definition: Definition, claim: Claim, state: str, context: Mapping[str, Any]
) -> None:
    """Call the ``succeeded`` hooks of a run the fast path just moved to ``state``."""
    found = hooks(definition, "succeeded")
    if not found:
        return
    from statewright.models.engine import WorkflowRun

    key = session.scalar(select(WorkflowRun.business_key).where(WorkflowRun.id == claim.run_id))
    end = RunEnd(
        session=session,
        run_id=claim.run_id,
        workflow=claim.workflow,
        status="succeeded",
        state=state,
        reason=None,
        params=claim.params,
        context=context,
        business_key=key,
    )
    _call(found, end)


def _call(found: list[Callable[[RunEnd], None]], end: RunEnd) -> None:
    for hook in found:
        try:
            hook(end)
        except Exception as error:
            raise LifecycleHookError(
                end.workflow, _name(hook), end.run_id, end.status, error
            ) from error


def _call_in_savepoint(
    found: list[Callable[[RunEnd], None]], end: RunEnd
) -> LifecycleHookError | None:
    """The hooks under a savepoint: if one raises, their writes roll back, the error is
    logged and returned, and the caller's transaction goes on."""
    savepoint = end.session.begin_nested()
    try:
        _call(found, end)
    except LifecycleHookError as error:
        savepoint.rollback()
        log.error("on_end hook failed; the run's failure is recorded without it", error=str(error))
        return error
    savepoint.commit()
    return None


def _name(hook: Callable[..., Any]) -> str:
    return getattr(hook, "__qualname__", repr(hook))
