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
from typing import Annotated, Any

import typer

from engine.cli.common import engine_from_env, err, fail, out
from engine.cli.doctor import doctor
from engine.cli.inspect import inspect_commands
from engine.cli.runs import runs_app
from engine.errors import StatewrightError
from workflows.relocation.cli import keys_app, relocation_app
from workflows.weekly_reports.cli import reports_app

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
inspect_commands(app)
app.command("doctor")(doctor)


def main() -> None:
    """Console entry point."""
    from engine.environment import warn_unknown_variables

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
    from engine.config import Settings, redact_url
    from engine.migrate import upgrade

    settings = Settings.from_env()
    upgrade(settings.database_url)
    out.print(f"database {redact_url(settings.database_url)} is up to date")


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1)] = 2,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo.")] = "prefork",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port.")
    ] = None,
) -> None:
    """Run steps: embedded (no broker configured) or a real Celery worker.

    Example: STATEWRIGHT_BROKER_URL=redis://localhost:6379/0 statewright worker -c 4
             --metrics-port 9108
    """
    from engine.config import Settings
    from engine.stats import prepare_multiprocess_metrics, serve_metrics

    settings = Settings.from_env()
    if metrics_port is not None:
        os.environ["STATEWRIGHT_METRICS_PORT"] = str(metrics_port)
    if not settings.embedded:
        if metrics_port is not None:
            prepare_multiprocess_metrics()
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
            "--without-gossip",
            "--without-mingle",
        ]
        os.execv(sys.executable, command)  # noqa: S606 - become the Celery worker
    from engine.embedded import EmbeddedWorker

    with engine_from_env() as engine:
        if metrics_port is not None:
            serve_metrics(metrics_port, engine.metrics)
        embedded = EmbeddedWorker(engine)
        _stop_on_signals(embedded.stop)
        embedded.start()
        out.print("embedded worker running; Ctrl-C stops it")
        embedded.wait()


@app.command()
def beat(
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    relay: Annotated[bool, typer.Option(help="Also run the outbox relay under beat.")] = False,
) -> None:
    """Run Celery beat: weekly reports (and, with --relay, the outbox relay) on schedule.

    Example: STATEWRIGHT_BROKER_URL=redis://localhost:6379/0 statewright beat --relay
    """
    from engine.config import Settings

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
    """Send due and orphaned outbox messages; re-dispatch expired leases.

    Needs a broker (the embedded worker runs its own); run one or more beside the workers.

    Example: STATEWRIGHT_BROKER_URL=redis://localhost:6379/0 statewright relay
    """
    from engine.maintenance import MaintenanceLoop

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


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: Any) -> None:
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
