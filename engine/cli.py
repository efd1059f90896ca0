"""The ``statewright`` command line.

Exit codes: 0 ok; 1 the operation was refused or failed, or the run failed;
2 usage error. Every read command takes ``--json`` for scripts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from engine.api import Engine
from engine.config import Settings, redact_url
from engine.errors import StatewrightError
from engine.logs import configure_logging
from engine.maintenance import MaintenanceLoop
from engine.observability import setup_sentry
from engine.progress import follow, follow_tasks
from engine.queries import RunInfo, TransitionInfo
from engine.schedule_cli import runs_purge, schedules_app
from engine.stats import prepare_multiprocess_metrics, serve_metrics
from workflows.relocation.cli import keys_app, relocation_app
from workflows.weekly_reports.cli import reports_app

app = typer.Typer(
    help="statewright: durable workflow state machines on Celery and SQLAlchemy.",
    no_args_is_help=True,
    add_completion=False,
)
runs_app = typer.Typer(help="Start, inspect and operate runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(keys_app, name="keys")
app.add_typer(relocation_app, name="relocation")
app.add_typer(reports_app, name="reports")
app.add_typer(schedules_app, name="schedules")
runs_app.command("purge")(runs_purge)

out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def main() -> None:
    """Console entry point."""
    try:
        app()
    except StatewrightError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        sys.exit(1)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def engine_from_env() -> Iterator[Engine]:
    configure_logging(level=os.environ.get("STATEWRIGHT_LOG_LEVEL", "WARNING"))
    engine = Engine(Settings.from_env())
    setup_sentry(engine.settings)
    try:
        ensure_migrated(engine)
        yield engine
    finally:
        engine.close()


def ensure_migrated(engine: Engine) -> None:
    from sqlalchemy import inspect

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


# -- setup and processes -------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Create or upgrade the schema of the configured database.

    Example: STATEWRIGHT_DATABASE_URL=postgresql://localhost/app statewright migrate
    """
    from engine.migrate import upgrade

    settings = Settings.from_env()
    upgrade(settings.database_url)
    out.print(f"database {redact_url(settings.database_url)} is up to date")
    engine = Engine(settings)
    try:
        changed = engine.schedules.sync()
    finally:
        engine.close()
    if changed:
        out.print(f"{changed} declared schedule(s) added, changed or removed")


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1)] = 2,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo.")] = "prefork",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port.")
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues",
            "-Q",
            help="Comma-separated queues to consume (default: every queue of this silo).",
        ),
    ] = None,
) -> None:
    """Run steps and tasks: embedded (no broker configured) or a real Celery worker.

    It consumes the queues of its silo (STATEWRIGHT_SILO_MODE): the default queue and
    those of every step and task allowed there; --queues names them instead.

    Example: STATEWRIGHT_BROKER_URL=redis://localhost:6379/0 statewright worker -c 4
             --metrics-port 9108
    """
    from engine.celery_app import silo_queues

    chosen = parse_queues(queues)
    settings = Settings.from_env()
    if metrics_port is not None:
        os.environ["STATEWRIGHT_METRICS_PORT"] = str(metrics_port)
    if not settings.embedded:
        if metrics_port is not None:
            prepare_multiprocess_metrics()
        if not chosen:
            configure_logging(level=os.environ.get("STATEWRIGHT_LOG_LEVEL", "WARNING"))
            probe = Engine(settings)
            chosen = silo_queues(probe.celery, settings.silo_mode)
            probe.close()
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "engine.worker_app",
            "worker",
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--loglevel",
            loglevel,
            "--queues",
            ",".join(chosen),
            # a node name of its own: two workers on one host must not share a control queue
            "--hostname",
            f"statewright-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
        os.execv(sys.executable, command)  # noqa: S606 - become the Celery worker
    from engine.embedded import EmbeddedWorker

    with engine_from_env() as engine:
        if metrics_port is not None:
            serve_metrics(metrics_port, engine.metrics)
        embedded = EmbeddedWorker(engine, queues=chosen or None)
        _stop_on_signals(embedded.stop)
        embedded.start()
        out.print(f"embedded worker running on {', '.join(embedded.queues)}; Ctrl-C stops it")
        embedded.wait()


def parse_queues(value: str | None) -> list[str]:
    """``--queues a,b`` as a list; an empty name is refused, naming the value."""
    if value is None:
        return []
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise typer.BadParameter(
            f"{value!r} names an empty queue; give queue names separated by commas, "
            "e.g. statewright,reports",
            param_hint="--queues",
        )
    return names


@app.command()
def beat(
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    relay: Annotated[bool, typer.Option(help="Also run the outbox relay under beat.")] = False,
) -> None:
    """Run Celery beat: weekly reports (and, with --relay, the outbox relay) on schedule.

    Example: STATEWRIGHT_BROKER_URL=redis://localhost:6379/0 statewright beat --relay
    """
    settings = Settings.from_env()
    if settings.embedded:
        fail(
            "beat needs STATEWRIGHT_BROKER_URL; with the embedded worker run "
            "`statewright reports run` on a schedule of your own"
        )
    if relay:
        os.environ["STATEWRIGHT_BEAT_RELAY"] = "1"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "engine.worker_app",
        "beat",
        "--loglevel",
        loglevel,
    ]
    os.execv(sys.executable, command)  # noqa: S606 - become Celery beat


@app.command()
def relay(
    once: Annotated[bool, typer.Option(help="Run one round and exit.")] = False,
) -> None:
    """Send orphaned and due outbox messages and re-dispatch expired leases.

    Example: STATEWRIGHT_BROKER_URL=redis://localhost:6379/0 statewright relay
    """
    with engine_from_env() as engine:
        if engine.settings.embedded:
            fail("the relay needs STATEWRIGHT_BROKER_URL; the embedded worker runs its own")
        stopping: list[bool] = []
        _stop_on_signals(lambda: stopping.append(True))
        loop = MaintenanceLoop(engine)
        while True:
            result = loop.round()
            if once:
                if result is None:
                    fail("the relay round failed; see the log")
                out.print(f"sent {result[0]} message(s), re-dispatched {result[1]} run(s)")
                return
            if stopping:
                return
            time.sleep(engine.settings.relay_interval)


@app.command()
def workflows(as_json: JsonFlag = False) -> None:
    """List the registered workflows and their states.

    Example: statewright workflows --json
    """
    engine = Engine(Settings.from_env())
    rows: list[dict[str, Any]] = [
        {
            "name": d.name,
            "version": d.version,
            "initial": d.initial,
            "states": list(d.states),
            "terminal": sorted(d.terminal),
        }
        for d in engine.registry.definitions.values()
    ]
    if as_json:
        out.print_json(data=rows)
        return
    table = Table("workflow", "version", "states", "terminal")
    for row in rows:
        table.add_row(
            row["name"], row["version"], " → ".join(row["states"]), ", ".join(row["terminal"])
        )
    out.print(table)


@app.command()
def demo(
    orgs: Annotated[int, typer.Option(min=1, max=20, help="Organizations in the sample.")] = 3,
    users: Annotated[int, typer.Option(min=1, max=100_000, help="Users in the sample.")] = 300,
    workdir: Annotated[Path, typer.Option(help="Where the demo's files go.")] = Path(
        ".statewright/demo"
    ),
    web: Annotated[
        bool, typer.Option("--web", help="Serve the console while it runs, until Ctrl-C.")
    ] = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="The console's port.")] = 8080,
) -> None:
    """Relocate a sample installation end to end on the embedded default, with progress.

    Example: statewright demo --orgs 5 --users 2000
    """
    from engine.demo import run_demo

    configure_logging(level="WARNING")
    code = run_demo(out, orgs=orgs, users=users, workdir=workdir, web_port=port if web else None)
    raise typer.Exit(code)


@app.command()
def diagram(
    workflow: Annotated[str | None, typer.Argument(help="Workflow name.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Show this run's path.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="mermaid, dot, svg or png.")] = "mermaid",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
    all_to: Annotated[
        Path | None, typer.Option("--all", help="Write .mmd and .svg of every workflow here.")
    ] = None,
) -> None:
    """Draw a workflow (or one run's path through it).

    Example: statewright diagram relocation --run 3f2a... --format svg -o run.svg
    """
    from engine.diagrams import FORMATS, render, write_all

    engine = Engine(Settings.from_env())
    if all_to is not None:
        for path in write_all(engine.registry.definitions.values(), all_to):
            out.print(f"wrote {path}")
        return
    if workflow is None and run is None:
        raise typer.BadParameter("name a WORKFLOW, or give --run or --all")
    if fmt not in FORMATS:
        raise typer.BadParameter(
            f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format"
        )
    info = history = None
    if run is not None:
        ensure_migrated(engine)
        info = engine.get(run)
        history = engine.history(run)
        if workflow is not None and workflow != info.workflow:
            raise StatewrightError(f"run {run} is a {info.workflow!r} run, not {workflow!r}")
    definition = engine.registry.get(info.workflow if info else str(workflow))
    data = render(definition, fmt, run=info, history=history)
    if output is None:
        if fmt in ("svg", "png") and sys.stdout.isatty():
            raise typer.BadParameter(f"{fmt} is binary; write it with -o FILE", param_hint="-o")
        sys.stdout.buffer.write(data)
        return
    output.write_bytes(data)
    out.print(f"wrote {output}")


@app.command()
def web(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
) -> None:
    """Serve the operator console in a browser: runs, timelines, diagrams, operations.

    Reading needs no login on loopback; operating needs STATEWRIGHT_CONSOLE_TOKEN or
    STATEWRIGHT_CONSOLE_USER=name:password.
    Example: STATEWRIGHT_CONSOLE_TOKEN=s3cret statewright web --port 8080
    """
    from engine.console import ConsoleServer

    with engine_from_env() as engine:
        server = ConsoleServer(engine, host=host, port=port)
        out.print(f"console on {server.url} (Ctrl-C stops it)")
        server.run()


@app.command("replay")
def replay_command(
    run_id: Annotated[str | None, typer.Argument(help="Replay this run.")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Replay every run.")] = False,
    files: Annotated[
        list[Path] | None, typer.Option("--file", help="Replay an exported history.")
    ] = None,
    at: Annotated[
        int | None, typer.Option(help="Rebuild the run as it stood after N rows.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check recorded histories against the current definitions; exit 1 on the first break.

    Example: statewright replay --all        statewright replay --file run.json --at 3
    """
    from engine.replay import ReplayDivergenceError, load_history, replay

    if not (run_id or all_runs or files):
        raise typer.BadParameter("give a RUN_ID, --all or --file")
    engine = Engine(Settings.from_env())
    recorded = []
    for path in files or []:
        try:
            recorded.append(load_history(json.loads(path.read_text()), str(path)))
        except (OSError, json.JSONDecodeError) as error:
            raise typer.BadParameter(f"{path}: {error}", param_hint="--file") from None
    if run_id or all_runs:
        ensure_migrated(engine)
        ids = [run_id] if run_id else _all_run_ids(engine)
        recorded += [load_history(engine.export_history(i), f"run {i}") for i in ids]
    results: list[dict[str, Any]] = []
    broken = 0
    for run in recorded:
        try:
            state = replay(engine.registry.get(run.workflow), run, until=at)
            results.append(
                {
                    "run": run.run_id,
                    "ok": True,
                    "position": state.position,
                    "state": state.state,
                    "status": state.status,
                }
            )
        except ReplayDivergenceError as error:
            broken += 1
            results.append({"run": run.run_id, "ok": False, "error": str(error)})
    if as_json:
        out.print_json(data=results)
    else:
        table = Table("run", "result", "position", "state", "status")
        for r in results:
            table.add_row(
                r["run"],
                "[green]ok[/]" if r["ok"] else f"[red]{r['error']}[/]",
                str(r.get("position", "")),
                r.get("state", ""),
                r.get("status", ""),
            )
        out.print(table)
    if broken:
        raise typer.Exit(1)


def _all_run_ids(engine: Engine) -> list[str]:
    """Every run, oldest first (the oldest are the likeliest to be stranded by a change)."""
    from sqlalchemy import select

    from models.engine import WorkflowRun

    with engine.db.reads() as session:
        return list(
            session.execute(
                select(WorkflowRun.id).order_by(WorkflowRun.created_at, WorkflowRun.id)
            ).scalars()
        )


# -- runs ----------------------------------------------------------------------------


@runs_app.command("start")
def runs_start(
    workflow: str,
    params: Annotated[str | None, typer.Option(help="Run parameters as a JSON object.")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key.")] = None,
    pause_at: Annotated[str | None, typer.Option(help="Pause when this state is reached.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the run, showing progress.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Start a run.

    Example: statewright runs start onboarding --params '{"email": "a@example.com"}' --wait
    """
    parsed = parse_json(params, "--params")
    with engine_from_env() as engine:
        info = engine.start(workflow, parsed, idempotency_key=key, pause_at=pause_at)
        if wait:
            info = wait_with_progress(engine, info)
        print_run(info, as_json)
        raise typer.Exit(waited_exit_code(info))


@runs_app.command("list")
def runs_list(
    workflow: Annotated[str | None, typer.Option(help="Only this workflow.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List runs, newest first.

    Example: statewright runs list --status failed --limit 20
    """
    with engine_from_env() as engine:
        found = engine.list(workflow=workflow, status=status, limit=limit)
    if as_json:
        out.print_json(data=[r.to_json() for r in found])
        return
    table = Table("run", "workflow", "state", "status", "attempt", "created", "reason")
    for r in found:
        table.add_row(
            r.id,
            r.workflow,
            r.state,
            _status(r.status),
            str(r.attempt),
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.failure_reason or "",
        )
    out.print(table)


@runs_app.command("show")
def runs_show(run_id: str, as_json: JsonFlag = False) -> None:
    """Show a run and its timeline.

    Example: statewright runs show 3f2a...
    """
    with engine_from_env() as engine:
        info = engine.get(run_id)
        history = engine.history(run_id)
    if as_json:
        out.print_json(data={**info.to_json(), "history": [h.to_json() for h in history]})
        return
    print_run(info, False)
    _print_history(history)


@runs_app.command("export")
def runs_export(
    run_id: str,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
) -> None:
    """Export a run's history as JSON, for replay in tests.

    Example: statewright runs export 3f2a... -o tests/histories/relocation-happy.json
    """
    with engine_from_env() as engine:
        text = json.dumps(engine.export_history(run_id), indent=1) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"wrote {output}")


@runs_app.command("history")
def runs_history(run_id: str, as_json: JsonFlag = False) -> None:
    """Print a run's history rows.

    Example: statewright runs history 3f2a... --json
    """
    with engine_from_env() as engine:
        history = engine.history(run_id)
    if as_json:
        out.print_json(data=[h.to_json() for h in history])
        return
    _print_history(history)


def _operation(name: str, call: Callable[[Engine, str], RunInfo], example: str) -> None:
    def command(run_id: str, as_json: JsonFlag = False) -> None:
        with engine_from_env() as engine:
            print_run(call(engine, run_id), as_json)

    command.__doc__ = f"{name.capitalize()} a run.\n\nExample: {example}"
    runs_app.command(name)(command)


_operation("resume", lambda e, r: e.resume(r), "statewright runs resume RUN_ID")
_operation("clear-pause", lambda e, r: e.clear_pause(r), "statewright runs clear-pause RUN_ID")
_operation("abort", lambda e, r: e.abort(r), "statewright runs abort RUN_ID")
_operation("redrive", lambda e, r: e.redrive(r), "statewright runs redrive RUN_ID")


@runs_app.command("pause")
def runs_pause(
    run_id: str,
    at: Annotated[str | None, typer.Option(help="Pause when this state is reached.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Pause a run now, or when it reaches a state ahead.

    Example: statewright runs pause RUN_ID --at welcoming
    """
    with engine_from_env() as engine:
        print_run(engine.pause(run_id, at=at), as_json)


@runs_app.command("cancel")
def runs_cancel(
    run_id: str,
    at: Annotated[str | None, typer.Option(help="Cancel when this state is reached.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Cancel a run at the next step boundary, or when it reaches a state ahead.

    Example: statewright runs cancel RUN_ID --at importing
    """
    with engine_from_env() as engine:
        print_run(engine.cancel(run_id, at=at), as_json)


@runs_app.command("signal")
def runs_signal(
    run_id: str,
    name: str,
    data: Annotated[str | None, typer.Option(help="Data merged into the run context.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Deliver an external event that fires a declared trigger.

    Example: statewright runs signal RUN_ID closed --data '{"by": "support"}'
    """
    parsed = parse_json(data, "--data")
    with engine_from_env() as engine:
        print_run(engine.signal(run_id, name, parsed), as_json)


# -- rendering -----------------------------------------------------------------------


def waited_exit_code(info: RunInfo) -> int:
    """1 for a run that ended without succeeding (failed or cancelled), else 0 (it
    succeeded, is paused where it was asked to, or is still running)."""
    return 1 if info.status in ("failed", "cancelled") else 0


def wait_with_progress(engine: Engine, info: RunInfo) -> RunInfo:
    """Follow a run until it stops, state by state, then wait for the tasks it dispatched
    (running the embedded worker meanwhile if needed)."""
    worker = None
    if engine.settings.embedded:
        from engine.embedded import EmbeddedWorker

        worker = EmbeddedWorker(engine).start()
    try:
        info = follow(engine, info, err)
        follow_tasks(engine, info.id, err)
        return info
    finally:
        if worker is not None:
            worker.stop()


def print_run(info: RunInfo, as_json: bool) -> None:
    if as_json:
        out.print_json(data=info.to_json())
        return
    table = Table(show_header=False, box=None)
    for label, value in [
        ("run", info.id),
        ("workflow", info.workflow),
        ("state", info.state),
        ("status", _status(info.status)),
        ("attempt", str(info.attempt)),
        ("polls", str(info.polls)),
        ("created", info.created_at.isoformat()),
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


def _print_history(history: list[TransitionInfo]) -> None:
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


def _status(status: str) -> str:
    colour = {"succeeded": "green", "failed": "red", "running": "cyan", "paused": "yellow"}
    return f"[{colour.get(status, 'white')}]{status}[/]"


def _error(detail: dict[str, Any] | None) -> str:
    if not detail:
        return ""
    return f"{detail.get('error_type', '')}: {detail.get('error_message', '')}"


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: Any) -> None:
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
