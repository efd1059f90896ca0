"""The benchmarked workload: ten steps, each one ``UPDATE`` of the run's own row.

The same row and the same statement serve all three systems, so the only
difference between them is what each adds around that statement:

- ``TenSteps``, a statewright workflow (``STATEWRIGHT_WORKFLOWS=bench.workload``);
- ``raw_app``, a plain Celery app whose chain of ten tasks runs the same step,
  each committing its own transaction (the floor);
- ``bench.dbos_worker``, DBOS running the same ten steps as transactions.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery, chain
from celery.signals import worker_ready
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, update
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.orm import Session

from bench import probe
from statewright.context import StepContext
from statewright.definition import Workflow, step

STEPS = 10


@worker_ready.connect
def _say_ready(**_: Any) -> None:
    print("bench worker ready.", flush=True)


metadata = MetaData()
bench_rows = Table(
    "bench_rows",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("system", String(20), nullable=False),
    Column("step", Integer, nullable=False),
)


def do_step(connection: Connection | Session, key: str, index: int) -> None:
    """The work of one step: move the run's own row to the next step (and mark the handler)."""
    started = time.time()
    connection.execute(
        update(bench_rows).where(bench_rows.c.key == key).values(step=bench_rows.c.step + 1)
    )
    probe.mark(key, index, started, time.time())


def _trigger(index: int) -> str:
    return f"done{index}"


def _handler(index: int) -> Any:
    """The handler of state ``s<index>``: one update, then on to the next state."""

    def handle(self: Workflow, ctx: StepContext) -> str:
        do_step(ctx.session, str(ctx.params["key"]), index)
        return _trigger(index)

    handle.__name__ = f"s{index}"
    return handle


class TenSteps(Workflow):
    """Ten states in a line; every step updates the run's row once."""

    name = "bench"
    transitions = [
        (_trigger(i), f"s{i}", f"s{i + 1}" if i < STEPS - 1 else "finished") for i in range(STEPS)
    ]
    terminal = ["finished"]

    s0 = step(initial=True)(_handler(0))
    s1 = step()(_handler(1))
    s2 = step()(_handler(2))
    s3 = step()(_handler(3))
    s4 = step()(_handler(4))
    s5 = step()(_handler(5))
    s6 = step()(_handler(6))
    s7 = step()(_handler(7))
    s8 = step()(_handler(8))
    s9 = step()(_handler(9))


WORKFLOWS = [TenSteps]

# -- the floor: a plain Celery chain ---------------------------------------------------

raw_app = Celery("bench_raw", set_as_current=False)
raw_app.conf.update(
    broker_url=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14"),
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    # the same delivery guarantees statewright asks of Celery: a message is acknowledged
    # only after its task ran, and a worker takes one message at a time per process
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue="bench-raw",
    worker_hijack_root_logger=False,
)
_raw_engine: dict[int, SAEngine] = {}


def _raw_db() -> SAEngine:
    pid = os.getpid()
    if pid not in _raw_engine:
        _raw_engine.clear()
        _raw_engine[pid] = create_engine(
            os.environ["BENCH_DATABASE_URL"], pool_pre_ping=True, pool_size=2
        )
    return _raw_engine[pid]


@raw_app.task(name="bench.raw_step")
def raw_step(key: str, index: int) -> None:
    """One step of the chain: the same UPDATE, committed in its own transaction."""
    with _raw_db().begin() as connection:
        do_step(connection, key, index)


def start_raw_chain(key: str) -> None:
    """Send the first task of a ten-task chain for ``key``."""
    chain(*(raw_step.si(key, i) for i in range(STEPS))).apply_async()
