"""A small measurement of the executor's hot path: runs of ten empty steps through the
embedded worker (in process), on SQLite or PostgreSQL.

    python -m bench.embedded_steps sqlite 200 0       # 2,000 steps, a message per step
    python -m bench.embedded_steps postgresql 200 1   # continuing for up to 1 s

Prints wall time and this process's CPU time per step (the steadier figure on a
shared machine). PostgreSQL gets a fresh database on ``BENCH_PG`` (default local).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any, Literal

import psycopg
from sqlalchemy import func, select

from statewright import Engine, Settings, StepContext, Workflow, step
from statewright.embedded import EmbeddedWorker
from statewright.migrate import upgrade
from statewright.models.engine import WorkflowRun

PG_SERVER = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
WARM_UP = 5


def _step(index: int) -> Any:
    def handler(self: Any, ctx: StepContext) -> str:
        return f"d{index}"

    handler.__name__ = f"s{index}"
    handler.__annotations__["return"] = Literal[f"d{index}"]
    return step(initial=index == 0)(handler)


Ten = type(
    "Ten",
    (Workflow,),
    {
        "__module__": __name__,
        "name": "ten",
        "transitions": [(f"d{i}", f"s{i}", f"s{i + 1}" if i < 9 else "done") for i in range(10)],
        "terminal": ["done"],
        **{f"s{i}": _step(i) for i in range(10)},
    },
)


def database(kind: str) -> str:
    """A new, migrated database of ``kind`` (``sqlite`` or ``postgresql``)."""
    if kind == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    elif kind == "postgresql":
        name = f"bench_embedded_{os.getpid()}"
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name}")
            connection.execute(f"CREATE DATABASE {name}")
        url = f"{PG_SERVER}/{name}"
    else:
        raise SystemExit(f"database {kind!r} is not one of: sqlite, postgresql")
    upgrade(url)
    return url


def drop(url: str) -> None:
    """Drop a PostgreSQL database ``database`` made (SQLite files stay in their temp folder)."""
    if url.startswith("postgresql"):
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]}")


def measure(kind: str, runs: int, continue_for: float) -> str:
    """Start ``runs`` runs after a warm-up and time them until all have succeeded."""
    url = database(kind)
    engine = Engine(Settings(database_url=url, continue_for=continue_for), [Ten])
    worker = EmbeddedWorker(engine, interval=0.2).start()
    try:
        for _ in range(WARM_UP):
            engine.start("ten", {})
        _wait(engine, WARM_UP)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(runs):
            engine.start("ten", {})
        _wait(engine, WARM_UP + runs)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        worker.stop()
        engine.close()
        drop(url)
    steps = runs * 10
    return (
        f"{kind} continue_for={continue_for:g}: {steps} steps in {wall:.2f} s "
        f"({steps / wall:.0f} steps/s), CPU {cpu * 1000 / steps:.2f} ms/step"
    )


def _wait(engine: Engine, succeeded: int) -> None:
    count = select(func.count()).where(WorkflowRun.status == "succeeded")
    while True:
        with engine.db.reads() as session:
            if session.execute(count).scalar_one() >= succeeded:
                return
        time.sleep(0.05)


if __name__ == "__main__":
    kind, runs, continue_for = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    print(measure(kind, runs, continue_for), flush=True)
