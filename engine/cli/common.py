"""What every command shares: the consoles, the engine from the environment, run ids,
printing a run, and waiting for one.

Kept free of Celery and the workflow packages at import time: ``workflows/*/cli.py``
import it, and ``statewright --help`` must not pay for what a command does not use.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from statewright.api import Engine
    from statewright.queries import RunInfo, TransitionInfo

out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (and nothing else there).")
]
RunId = Annotated[str, typer.Argument(help="A run id, or a unique prefix of one.")]


class Status(StrEnum):
    """The statuses a run can have (``--status`` choices)."""

    running = "running"
    paused = "paused"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def engine_from_env() -> Iterator[Engine]:
    """An engine built from ``STATEWRIGHT_*`` settings, on a migrated database."""
    engine = engine_without_database()
    try:
        ensure_migrated(engine)
        yield engine
    finally:
        engine.close()


def engine_without_database() -> Engine:
    """An engine from the environment for commands that may not touch the database."""
    from statewright.api import Engine
    from statewright.config import Settings
    from statewright.logs import configure_logging, log_level_from_env
    from statewright.observability import setup_sentry

    configure_logging(level=log_level_from_env())
    engine = Engine(Settings.from_env())
    setup_sentry(engine.settings)
    return engine


def ensure_migrated(engine: Engine) -> None:
    from sqlalchemy import inspect

    from statewright.config import redact_url
    from statewright.errors import StatewrightError

    if not inspect(engine.db.engine).has_table("workflow_runs"):
        raise StatewrightError(
            f"database {redact_url(engine.settings.database_url)} has no statewright tables; "
            "run `statewright migrate` first"
        )


def parse_json(value: str | None, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"{what} is not valid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise typer.BadParameter(f"{what} must be a JSON object, e.g. '{{\"key\": 1}}'")
    return parsed


def waited_exit_code(info: RunInfo) -> int:
    """1 for a run that ended without succeeding (failed or cancelled), else 0 (it
    succeeded, is paused where it was asked to, or is still running)."""
    return 1 if info.status in ("failed", "cancelled") else 0


def wait_with_progress(engine: Engine, info: RunInfo) -> RunInfo:
    """Follow a run until it stops, state by state, then wait for the tasks it dispatched.

    On the embedded default a worker runs in this process for as long as we wait, and
    it works for this run only: other pending runs are left for their own worker.
    Ctrl-C stops following (and that worker); the run itself goes on.
    """
    from statewright.progress import follow, follow_tasks

    worker = None
    if engine.settings.embedded and not info.finished:
        from statewright.embedded import EmbeddedWorker

        worker = EmbeddedWorker(engine, only_run=info.id).start()
    try:
        info = follow(engine, info, err)
        follow_tasks(engine, info.id, err)
        return info
    except KeyboardInterrupt:
        where = engine.get(info.id)
        goes_on = (
            "it goes on when a worker runs it (`statewright worker`)"
            if engine.settings.embedded
            else "it goes on on the workers"
        )
        err.print(
            f"stopped following run {where.id} ({where.status} in {where.state!r}); "
            f"{goes_on}. Follow it again with: statewright runs wait {where.id}",
            highlight=False,
        )
        raise typer.Exit(130) from None
    finally:
        if worker is not None:
            worker.stop()


def print_run(info: RunInfo, as_json: bool) -> None:
    if as_json:
        print_json(info.to_json())
        return
    table = Table(show_header=False, box=None)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in [
        ("run", info.id),
        ("workflow", info.workflow),
        ("key", info.business_key or ""),
        ("state", info.state),
        ("status", status_markup(info.status)),
        ("attempt", str(info.attempt) if not info.finished else ""),
        ("polls", str(info.polls) if info.polls and not info.finished else ""),
        ("created", info.created_at.isoformat()),
        ("finished", info.finished_at.isoformat() if info.finished_at else ""),
        ("failure", info.failure_reason or ""),
        ("error", _error(info.failure_detail)),
        ("pause at", info.pause_at or ""),
        ("cancel at", info.cancel_at or ""),
        ("deadline", info.deadline_at.isoformat() if info.deadline_at else ""),
        ("kept signals", ", ".join(str(s["trigger"]) for s in info.kept_signals)),
    ]:
        if value:
            table.add_row(f"[bold]{label}[/bold]", value)
    out.print(table)


def print_json(data: Any) -> None:
    """JSON on stdout, whatever the terminal's width (no wrapping, no colour codes)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def print_history(history: list[TransitionInfo]) -> None:
    table = Table("#", "at", "from", "trigger", "to", "attempt", "ms", "detail")
    for h in history:
        detail = json.dumps(h.detail)[:80] if h.detail else ""
        at = h.at.strftime("%H:%M:%S.%f")[:-3]
        if h.polls > 1:  # folded polls: first and last time
            at = f"{h.first_at.strftime('%H:%M:%S.%f')[:-3]}-{at}"
        table.add_row(
            str(h.seq),
            at,
            h.from_state or "",
            f"poll x{h.polls}" if h.polls > 1 else h.trigger,
            h.to_state,
            str(h.attempt),
            f"{h.duration_ms:.1f}" if h.duration_ms is not None else "",
            detail,
        )
    out.print(table)


def status_markup(status: str) -> str:
    colour = {"succeeded": "green", "failed": "red", "running": "cyan", "paused": "yellow"}
    return f"[{colour.get(status, 'white')}]{status}[/]"


def _error(detail: dict[str, Any] | None) -> str:
    if not detail:
        return ""
    return f"{detail.get('error_type', '')}: {detail.get('error_message', '')}"
