"""The root of the ``statewright`` command line: its groups, setup and process commands.

Exit codes: 0 ok; 1 the operation was refused or failed, or the run failed;
2 usage error. Every read command takes ``--json`` for scripts.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from statewright.cli.common import engine_from_env, engine_without_database, err, fail, out
from statewright.cli.doctor import doctor
from statewright.cli.inspect import inspect_commands
from statewright.cli.runs import runs_app
from statewright.errors import StatewrightError
from statewright.schedule_cli import runs_purge, schedules_app
from statewright.workflows.relocation.cli import keys_app, relocation_app
from statewright.workflows.weekly_reports.cli import reports_app

if TYPE_CHECKING:
    from statewright.config import Settings

app = typer.Typer(
    help="statewright: durable workflow state machines on Celery and SQLAlchemy.\n\n"
    "Settings come from STATEWRIGHT_* environment variables (see `statewright doctor` "
    "and the README); with no STATEWRIGHT_BROKER_URL everything runs embedded, in this "
    "process, on a SQLite file.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(runs_app, name="runs")
app.add_typer(keys_app, name="keys")
app.add_typer(relocation_app, name="relocation")
app.add_typer(reports_app, name="reports")
app.add_typer(schedules_app, name="schedules")
runs_app.command("purge")(runs_purge)
inspect_commands(app)
app.command("doctor")(doctor)


def main() -> None:
    """Console entry point."""
    from statewright.environment import warn_unknown_variables

    warn_unknown_variables(os.environ, err)
    try:
        app()
    except StatewrightError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        sys.exit(1)


# -- setup and processes -------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Create or upgrade the configured database's schema to the latest revision.

    Run it after installing or upgrading statewright, before starting workers.

    Example: STATEWRIGHT_DATABASE_URL=postgresql://localhost/app statewright migrate
    """
    from statewright.config import Settings, redact_url
    from statewright.migrate import upgrade

    settings = Settings.from_env()
    upgrade(settings.database_url)
    out.print(f"database {redact_url(settings.database_url)} is up to date")
    with engine_from_env() as engine:
        changed = engine.schedules.sync()
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
    from statewright.config import Settings

    chosen = parse_queues(queues)
    settings = Settings.from_env()
    if metrics_port is not None:
        os.environ["STATEWRIGHT_METRICS_PORT"] = str(metrics_port)
    if not settings.embedded:
        _become_celery_worker(settings, concurrency, pool, loglevel, chosen, metrics_port)
    _run_embedded_worker(chosen, metrics_port)


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


def _become_celery_worker(
    settings: Settings,
    concurrency: int,
    pool: str,
    loglevel: str,
    queues: list[str],
    metrics_port: int | None,
) -> NoReturn:
    """Replace this process with a Celery worker on ``queues`` (default: the silo's)."""
    from statewright.stats import prepare_multiprocess_metrics

    if metrics_port is not None:
        prepare_multiprocess_metrics()
    if not queues:
        from statewright.celery_app import silo_queues

        probe = engine_without_database()
        queues = silo_queues(probe.celery, settings.silo_mode)
        probe.close()
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "statewright.worker_app",
        "worker",
        "--concurrency",
        str(concurrency),
        "--pool",
        pool,
        "--loglevel",
        loglevel,
        "--queues",
        ",".join(queues),
        # a node name of its own: two workers on one host must not share a control queue
        "--hostname",
        f"statewright-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    os.execv(sys.executable, command)  # noqa: S606 - become the Celery worker


def _run_embedded_worker(queues: list[str], metrics_port: int | None) -> None:
    from statewright.embedded import EmbeddedWorker
    from statewright.stats import serve_metrics

    with engine_from_env() as engine:
        if metrics_port is not None:
            serve_metrics(metrics_port, engine.metrics)
        embedded = EmbeddedWorker(engine, queues=queues or None)
        _stop_on_signals(embedded.stop)
        embedded.start()
        out.print(f"embedded worker running on {', '.join(embedded.queues)}; Ctrl-C stops it")
        embedded.wait()


@app.command()
def beat(
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    relay: Annotated[bool, typer.Option(help="Also run the outbox relay under beat.")] = False,
) -> None:
    """Run Celery beat: weekly reports (and, with --relay, the outbox relay) on schedule.

    Example: STATEWRIGHT_BROKER_URL=redis://localhost:6379/0 statewright beat --relay
    """
    from statewright.config import Settings

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
        "statewright.worker_app",
        "beat",
        "--loglevel",
        loglevel,
    ]
    os.execv(sys.executable, command)  # noqa: S606 - become Celery beat


@app.command()
def relay(
    once: Annotated[bool, typer.Option(help="Run one round and exit.")] = False,
) -> None:
    """Send due and orphaned outbox messages; re-dispatch expired leases.

    Needs a broker (the embedded worker runs its own); run one or more beside the workers.

    Example: STATEWRIGHT_BROKER_URL=redis://localhost:6379/0 statewright relay
    """
    from statewright.maintenance import MaintenanceLoop

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
def web(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
) -> None:
    """Serve the operator console in a browser: runs, timelines, diagrams, operations.

    Reading needs no login on loopback; operating needs STATEWRIGHT_CONSOLE_TOKEN or
    STATEWRIGHT_CONSOLE_USER=name:password.

    Example: STATEWRIGHT_CONSOLE_TOKEN=s3cret statewright web --port 8080
    """
    from statewright.console import ConsoleServer

    with engine_from_env() as engine:
        server = ConsoleServer(engine, host=host, port=port)
        out.print(f"console on {server.url} (Ctrl-C stops it)")
        server.run()


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: Any) -> None:
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
