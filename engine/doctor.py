"""``statewright doctor``: is this installation able to run steps, and if not, why?

Each check reads the real thing (the database and its migrations, the broker, the
workers' answers to a ping, the outbox) and says what is wrong and the command that
fixes it. The command line and the web console show the same checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Literal

from statewright.api import Engine
from statewright.config import redact_url

Outcome = Literal["ok", "warning", "problem"]

#: How long a due outbox message may wait before we say no relay is sending it.
RELAY_LAG = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: what was checked, how it went, and what to do about it."""

    name: str
    outcome: Outcome
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_checks(engine: Engine, *, timeout: float = 2.0) -> list[Check]:
    """Every check, in the order a person would fix them; later checks that need an
    earlier one (the database) are skipped when it fails."""
    database = check_database(engine)
    found = [database, check_broker(engine, timeout)]
    if database.outcome != "problem":
        found.append(check_relay(engine))
    found.append(check_workers(engine, timeout))
    return found


def check_database(engine: Engine) -> Check:
    from statewright.migrate import current_revisions, head_revisions

    url = engine.settings.database_url
    shown = redact_url(url)
    try:
        current = current_revisions(url)
    except Exception as error:  # any driver error: the database cannot be reached
        return Check(
            "database",
            "problem",
            f"{shown} cannot be reached: {_first_line(error)}",
            "check STATEWRIGHT_DATABASE_URL and that the database server is running",
        )
    heads = head_revisions()
    if current == heads:
        return Check("database", "ok", f"{shown}, migrated to {', '.join(sorted(heads))}")
    where = ", ".join(sorted(current)) or "no statewright tables"
    return Check(
        "database",
        "problem",
        f"{shown} is at {where}; this code needs {', '.join(sorted(heads))}",
        "statewright migrate",
    )


def check_broker(engine: Engine, timeout: float) -> Check:
    if engine.settings.embedded:
        return Check(
            "broker",
            "ok",
            "none configured: embedded mode; steps run in `statewright worker` (embedded) "
            "or in a command that waits for its run (--wait, runs wait)",
        )
    shown = redact_url(engine.settings.broker_url or "")
    try:
        with engine.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=max(1, round(timeout)))
    except Exception as error:  # kombu raises the transport's own errors
        return Check(
            "broker",
            "problem",
            f"{shown} cannot be reached: {_first_line(error)}",
            "check STATEWRIGHT_BROKER_URL and that the broker (Redis or RabbitMQ) is running",
        )
    return Check("broker", "ok", f"{shown} reachable")


def check_workers(engine: Engine, timeout: float) -> Check:
    """Workers that answer a ping, with their queues; queues nobody consumes."""
    needed = _queues(engine)
    if engine.settings.embedded:
        return Check(
            "workers",
            "warning",
            "embedded mode has no worker processes to ask; pending runs wait for "
            "`statewright worker` (it also runs the relay)",
            "statewright worker",
        )
    try:
        answers = engine.celery.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as error:  # the broker went away between checks
        return Check("workers", "problem", f"could not ask: {_first_line(error)}")
    if not answers:
        return Check(
            "workers", "problem", f"no worker answered within {timeout:g}s", "statewright worker"
        )
    served = {q["name"] for queues in answers.values() for q in queues}
    listed = "; ".join(
        f"{name}: {', '.join(sorted(q['name'] for q in queues))}"
        for name, queues in sorted(answers.items())
    )
    missing = sorted(needed - served)
    if missing:
        return Check(
            "workers",
            "problem",
            f"{listed}; nobody consumes {', '.join(missing)}",
            "start a worker in the silo that runs those queues "
            "(STATEWRIGHT_SILO_MODE=... statewright worker)",
        )
    return Check("workers", "ok", listed)


def check_relay(engine: Engine) -> Check:
    """No relay records a heartbeat; a due message waiting long in the outbox says none
    is running."""
    due = engine.relay.next_due()
    if due is None or due > engine.clock.now() - RELAY_LAG:
        return Check("relay", "ok", "no message has waited in the outbox past its time")
    waited = (engine.clock.now() - due).total_seconds()
    fix = "statewright worker" if engine.settings.embedded else "statewright relay"
    return Check(
        "relay",
        "problem",
        f"a message has waited {waited:.0f}s in the outbox past its time: no relay is "
        "sending (relays record no heartbeat; the outbox's oldest due message is the sign)",
        fix,
    )


def _queues(engine: Engine) -> set[str]:
    queues = {step.queue for step in engine.registry.steps()}
    return queues | {engine.settings.default_queue}


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


CheckFunction = Callable[[Engine], Check]
