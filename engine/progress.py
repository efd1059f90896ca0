"""Following a run live: one line per state, with what it is doing and how long it took."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from engine.api import Engine
from engine.deliveries import PendingTask
from engine.queries import RunInfo, TransitionInfo

#: How long a command that waited for a run then waits for the tasks it dispatched.
TASK_WAIT = 600.0


def state_times(history: list[TransitionInfo], now: datetime) -> dict[str, timedelta]:
    """Time spent in each state so far (a state entered twice adds up)."""
    spent: dict[str, timedelta] = {}
    entered: tuple[str, datetime] | None = None
    for row in history:
        if row.from_state != row.to_state or row.trigger == "start":
            if entered is not None:
                state, since = entered
                spent[state] = spent.get(state, timedelta()) + (row.at - since)
            entered = (row.to_state, row.at)
    if entered is not None:
        state, since = entered
        spent[state] = spent.get(state, timedelta()) + (now - since)
    return spent


def render(engine: Engine, info: RunInfo) -> Table:
    """The run's states as a table: done, current (with attempt and polls), or to come."""
    definition = engine.registry.get(info.workflow)
    history = engine.history(info.id)
    now = info.finished_at or engine.clock.now()
    spent = state_times(history, now)
    ahead = definition.ahead_of(info.state)
    table = Table(title=f"{info.workflow} run {info.id}", show_edge=False, expand=False)
    table.add_column("", width=2)
    table.add_column("state")
    table.add_column("time", justify="right")
    table.add_column("")
    for state in definition.states:
        if state not in definition.steps and state != info.state:
            continue
        took = f"{spent[state].total_seconds():.2f}s" if state in spent else ""
        if state == info.state and not info.finished:
            mark: Spinner | Text = (
                Spinner("dots") if info.status == "running" else Text("‖", style="yellow")
            )
            note = f"{info.status}, attempt {max(info.attempt, 1)}"
            note += f", {info.polls} poll(s)" if info.polls else ""
            table.add_row(mark, Text(state, style="bold"), took, note)
        elif state == info.state and info.status == "failed":
            table.add_row(Text("✗", style="red"), state, took, info.failure_reason or "")
        elif state in ahead or (state == info.state and info.status == "cancelled"):
            table.add_row(Text("·", style="dim"), Text(state, style="dim"), "", "")
        else:
            table.add_row(Text("✓", style="green"), state, took, "")
    return table


def follow(engine: Engine, info: RunInfo, console: Console, *, interval: float = 0.1) -> RunInfo:
    """Show the run live until it finishes or pauses; returns it as it then stands."""
    with Live(Group(render(engine, info)), console=console, refresh_per_second=8) as live:
        while not (info.finished or info.status == "paused"):
            time.sleep(interval)
            info = engine.get(info.id)
            live.update(Group(render(engine, info)))
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
