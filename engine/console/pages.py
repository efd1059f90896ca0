"""What each page shows, read through the engine's own queries (no state of its own)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from statewright.api import Engine
from statewright.errors import InvalidParamsError
from statewright.queries import RunFilter, RunInfo, RunPage, RunWait, TransitionInfo
from statewright.redaction import redact_text, redact_value
from statewright.registry import StepOptions

FILTER_FIELDS = ("workflow", "status", "state", "started_from", "started_to", "text", "key")


@dataclass(frozen=True, slots=True)
class RunsView:
    filters: RunFilter
    query: dict[str, str]
    page: RunPage
    counts: dict[str, int]
    workflows: list[str]
    states: list[str]


@dataclass(frozen=True, slots=True)
class TimelineRow:
    row: TransitionInfo
    #: The row's detail with secrets replaced.
    detail: dict[str, Any] | None
    #: Time from this row to the next one (or to now, for the last row of a live run).
    spent: timedelta | None


@dataclass(frozen=True, slots=True)
class RunView:
    run: RunInfo
    #: The failure reason for people, with any secret in it replaced.
    reason: str | None
    waiting: str
    timeline: list[TimelineRow]
    error: dict[str, Any] | None
    params: dict[str, Any]
    context: dict[str, Any]
    signals: tuple[str, ...]
    pause_states: list[str]


@dataclass(frozen=True, slots=True)
class WorkflowView:
    name: str
    version: str
    steps: list[StepOptions]
    terminal: list[str]
    counts: dict[str, int]


def parse_filters(query: dict[str, str]) -> RunFilter:
    """A ``RunFilter`` from the runs page's query string; a clear error for a bad value."""
    values = {k: query.get(k, "").strip() or None for k in FILTER_FIELDS}
    return RunFilter(
        workflow=values["workflow"],
        status=values["status"],
        state=values["state"],
        started_from=_moment(values["started_from"], "started_from"),
        started_to=_moment(values["started_to"], "started_to"),
        text=values["text"],
        business_key=values["key"],
    )


def _moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidParamsError(
            f"{name} {value[:40]!r} is not a time; use e.g. 2026-11-30T08:00 (UTC)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def runs_view(engine: Engine, query: dict[str, str], *, limit: int = 50) -> RunsView:
    filters = parse_filters(query)
    page = engine.search(filters, after=query.get("after") or None, limit=limit)
    definitions = engine.registry.definitions.values()
    states = sorted({s for d in definitions for s in d.states})
    kept = {k: query[k] for k in FILTER_FIELDS if query.get(k, "").strip()}
    return RunsView(
        filters,
        kept,
        page,
        engine.status_counts(filters),
        sorted(engine.registry.definitions),
        states,
    )


def run_view(engine: Engine, run_id: str) -> RunView:
    run = engine.get(run_id)
    history = engine.history(run_id)
    definition = engine.registry.definitions.get(run.workflow)
    now = engine.clock.now()
    ahead = sorted(definition.ahead_of(run.state)) if definition else []
    if definition and run.state in definition.steps:
        ahead = [run.state, *ahead]
    return RunView(
        run=run,
        reason=redact_text(run.failure_reason) if run.failure_reason else None,
        waiting=describe_wait(run, engine.waiting(run_id), history, now),
        timeline=timeline(history, run, now),
        error=_error(run.failure_detail),
        params=redact_value("", run.params),
        context=redact_value("", run.context),
        signals=definition.triggers_from(run.state) if definition else (),
        pause_states=[s for s in ahead if definition and s in definition.steps],
    )


def workflow_view(engine: Engine, name: str) -> WorkflowView:
    definition = engine.registry.get(name)
    return WorkflowView(
        name=definition.name,
        version=definition.version,
        steps=[engine.registry.step(name, s) for s in definition.states if s in definition.steps],
        terminal=sorted(definition.terminal),
        counts=engine.status_counts(RunFilter(workflow=name)),
    )


def timeline(history: list[TransitionInfo], run: RunInfo, now: datetime) -> list[TimelineRow]:
    rows = []
    for index, row in enumerate(history):
        if index + 1 < len(history):
            spent: timedelta | None = history[index + 1].at - row.at
        else:
            spent = None if run.finished else now - row.at
        detail = redact_value("", row.detail) if row.detail else None
        rows.append(TimelineRow(row, detail, spent))
    return rows


def describe_wait(run: RunInfo, wait: RunWait, history: list[TransitionInfo], now: datetime) -> str:
    """What the run waits for, in words, and until when."""
    if run.finished:
        return f"nothing: the run {run.status}"
    if run.status == "paused":
        return f"an operator: paused in {run.state!r}; resume continues that step"
    if wait.claimed:
        until = f" (lease until {when(wait.lease_expires_at)})" if wait.lease_expires_at else ""
        return f"a worker running the {run.state!r} step, attempt {run.attempt}{until}"
    if wait.due_at is not None and wait.due_at > now:
        last = history[-1].trigger if history else ""
        kind = {"retry": "a backoff before the next attempt", "poll": "the next poll"}.get(
            last, "a timer"
        )
        return f"{kind}: the {run.state!r} step is due at {when(wait.due_at)}"
    return f"a worker to take the {run.state!r} step (queued)"


def _error(detail: dict[str, Any] | None) -> dict[str, Any] | None:
    if not detail:
        return None
    return {key: redact_value(key, value) for key, value in detail.items()}


def when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(value: timedelta | float | None) -> str:
    """A duration for people: 850 ms, 4.2 s, 3 min 5 s, 2 h 10 min."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value / 1000
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
