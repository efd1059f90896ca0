"""Following a run live: the path it took, state by state, with what it is doing now.

Only states the run actually entered are ticked, in the order it entered them, with
the attempts and polls each used (read from its history); the states still ahead of
it are listed dim. While the display runs, log lines print above it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from statewright.api import Engine
from statewright.deliveries import PendingTask
from statewright.logs import logs_to
from statewright.queries import RunInfo, TransitionInfo

#: How long a command that waited for a run then waits for the tasks it dispatched.
TASK_WAIT = 600.0


def state_times(history: list[TransitionInfo], now: datetime) -> dict[str, timedelta]:
    """Time spent in each state so far (a state entered twice adds up)."""
    spent: dict[str, timedelta] = {}
    entered: tuple[str, datetime] | None = None
    for row in history:
        if _enters(row):
            if entered is not None:
                state, since = entered
                spent[state] = spent.get(state, timedelta()) + (row.at - since)
            entered = (row.to_state, row.at)
    if entered is not None:
        state, since = entered
        spent[state] = spent.get(state, timedelta()) + (now - since)
    return spent


@dataclass
class StateUse:
    """What one state of a run used: its attempts and polls."""

    attempts: int = 0
    polls: int = 0


def path_taken(history: list[TransitionInfo]) -> list[str]:
    """The states the run entered, in the order it first entered them."""
    path: list[str] = []
    for row in history:
        if _enters(row) and row.to_state not in path:
            path.append(row.to_state)
    return path


def state_use(history: list[TransitionInfo]) -> dict[str, StateUse]:
    """Attempts and polls each state used, from the rows its steps wrote."""
    used: dict[str, StateUse] = {}
    for row in history:
        if row.from_state is None or row.trigger in ("start", "redispatch"):
            continue
        use = used.setdefault(row.from_state, StateUse())
        use.attempts = max(use.attempts, row.attempt)
        use.polls += row.trigger == "poll"
    return used


def _enters(row: TransitionInfo) -> bool:
    return row.from_state != row.to_state or row.trigger == "start"


def render(engine: Engine, info: RunInfo) -> Group:
    """The run's header and its states: taken (✓), current, or still ahead (·)."""
    definition = engine.registry.get(info.workflow)
    history = engine.history(info.id)
    spent = state_times(history, info.finished_at or engine.clock.now())
    used = state_use(history)
    table = Table(show_edge=False, expand=False)
    table.add_column("", width=2)
    table.add_column("state", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("", overflow="fold")
    path = path_taken(history)
    ahead = [s for s in definition.states if s in definition.ahead_of(info.state)]
    for state in path + [s for s in ahead if s not in path and not info.finished]:
        took = f"{spent[state].total_seconds():.2f}s" if state in spent else ""
        use = used.get(state, StateUse())
        if state == info.state:
            table.add_row(*_current(info, state, took, use))
        elif state in path:
            table.add_row(Text("✓", style="green"), state, took, _used(use))
        else:
            table.add_row(Text("·", style="dim"), Text(state, style="dim"), "", "")
    # wrapped at the space if narrow, so the id itself is never split
    header = Text(f"{info.workflow} run {info.id}", style="bold")
    return Group(header, table)


def _current(
    info: RunInfo, state: str, took: str, use: StateUse
) -> tuple[Spinner | Text, Text | str, str, str]:
    if info.status == "running":
        note = f"running, attempt {max(info.attempt, 1)}"
        note += f", {info.polls} poll(s)" if info.polls else ""
        return Spinner("dots"), Text(state, style="bold"), took, note
    if info.status == "paused":
        return Text("‖", style="yellow"), Text(state, style="bold"), took, "paused"
    if info.status == "failed":
        reason = info.failure_reason or "failed"
        return Text("✗", style="red"), state, took, f"{reason} {_used(use)}".strip()
    if info.status == "cancelled":
        return Text("⊘", style="yellow"), state, took, "cancelled"
    return Text("✓", style="green"), state, took, _used(use)


def _used(use: StateUse) -> str:
    parts = [f"{use.attempts} attempts"] if use.attempts > 1 else []
    parts += [f"{use.polls} poll(s)"] if use.polls else []
    return f"({', '.join(parts)})" if parts else ""


def follow(engine: Engine, info: RunInfo, console: Console, *, interval: float = 0.1) -> RunInfo:
    """Show the run live until it finishes or pauses; returns it as it then stands."""
    with (
        Live(render(engine, info), console=console, refresh_per_second=8) as live,
        logs_to(live.console),
    ):
        while not (info.finished or info.status == "paused"):
            time.sleep(interval)
            info = engine.get(info.id)
            live.update(render(engine, info))
    return info


def describe_pending(pending: list[PendingTask]) -> str:
    """``relocation.send_emails x2 (1 running, attempt 2)``-style summary, by task name."""
    names: dict[str, list[PendingTask]] = {}
    for task in pending:
        names.setdefault(task.task_name, []).append(task)
    parts = []
    for name, tasks in names.items():
        running = sum(1 for t in tasks if t.running)
        attempts = max(t.attempts for t in tasks)
        notes = [f"{running} running"] if running else []
        notes += [f"attempt {attempts}"] if attempts > 1 else []
        parts.append(f"{name} x{len(tasks)}" + (f" ({', '.join(notes)})" if notes else ""))
    return ", ".join(parts)


def follow_tasks(
    engine: Engine, run_id: str, console: Console, *, timeout: float = TASK_WAIT
) -> list[PendingTask]:
    """Wait (at most ``timeout`` seconds, showing what is left) for the tasks the run
    dispatched; say plainly what is still queued if some are. Returns those."""
    if not engine.pending_tasks(run_id):
        return []
    started = time.monotonic()
    with Live(Text(""), console=console, refresh_per_second=4, transient=True) as live:

        def show(pending: list[PendingTask]) -> None:
            waited = time.monotonic() - started
            line = f"waiting for the run's tasks ({waited:.0f}s): {describe_pending(pending)}"
            live.update(Group(Spinner("dots", text=line)))

        pending = engine.wait_for_tasks(run_id, timeout=timeout, progress=show)
    if pending:
        console.print(
            f"still queued after {timeout:.0f}s: {describe_pending(pending)}; "
            "a running `statewright worker` will finish them"
        )
    else:
        waited = time.monotonic() - started
        console.print(f"every task the run dispatched has finished (waited {waited:.1f}s)")
    return pending
