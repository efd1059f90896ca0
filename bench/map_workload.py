"""The Map benchmark's workload: N items, each one ``UPDATE`` of its own row, then a join.

Both systems do the same work on the same tables:

- ``BenchMap``, a statewright workflow (``STATEWRIGHT_WORKFLOWS=bench.map_workload``):
  a Map state whose task items each run ``item_update``, then a state whose step runs
  ``join_update`` once the Map has joined;
- ``chord_app``, a plain Celery app: a chord of N ``bench.map_item`` tasks (each the same
  ``UPDATE`` in its own transaction) with ``bench.map_join`` as its callback, on the
  Redis result backend (Celery's native chord counter: ``INCR`` per finished task).

``bench_items.done`` counts how many times each item's ``UPDATE`` committed (1 is right,
0 is a lost item, 2 or more a duplicate) and ``bench_joins.joins`` how many times the
join ran.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, Literal

from celery import Celery
from celery.signals import worker_ready
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, update
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.orm import Session

from statewright import RetryPolicy, StepContext, Workflow, step
from statewright.fanout import ItemContext, PageContext
from statewright.instrumentation import HARD_LIMIT_MARGIN
from statewright.joins import Map

#: How long a message that a dead worker held waits before it is delivered again, on
#: both systems. statewright leases a Map item it runs for the Map's item time limit
#: (``ITEM_TIME_LIMIT``), the hard-limit margin (5 s) and ``STATEWRIGHT_LEASE_GRACE``
#: (2 s here); the chord app gets the same as its Redis ``visibility_timeout``, and
#: statewright the same as ``STATEWRIGHT_DISPATCH_TIMEOUT`` (a message published but
#: never claimed).
ITEM_TIME_LIMIT = 30.0
LEASE_GRACE = 2
REDELIVER_AFTER = ITEM_TIME_LIMIT + HARD_LIMIT_MARGIN + LEASE_GRACE


@worker_ready.connect
def _say_ready(**_: Any) -> None:
    print("bench map worker ready.", flush=True)


metadata = MetaData()
bench_items = Table(
    "bench_items",
    metadata,
    Column("system", String(20), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("done", Integer, nullable=False),
)
bench_joins = Table(
    "bench_joins",
    metadata,
    Column("system", String(20), primary_key=True),
    Column("joins", Integer, nullable=False),
    #: ``time.time()`` when the join last ran.
    Column("at", Float),
)


def item_update(connection: Connection | Session, system: str, position: int) -> None:
    """The work of one item: one ``UPDATE`` of its own row."""
    connection.execute(
        update(bench_items)
        .where(bench_items.c.system == system, bench_items.c.position == position)
        .values(done=bench_items.c.done + 1)
    )


def join_update(connection: Connection | Session, system: str) -> None:
    """The join's work: count it, and when it ran."""
    connection.execute(
        update(bench_joins)
        .where(bench_joins.c.system == system)
        .values(joins=bench_joins.c.joins + 1, at=time.time())
    )


class BenchMap(Workflow):
    """preparing -> mapping (a Map of task items) -> joined (the callback) -> finished."""

    name = "bench_map"
    transitions = [
        ("prepared", "preparing", "mapping"),
        ("mapped", "mapping", "joined"),
        ("counted", "joined", "finished"),
    ]
    terminal = ["finished"]
    # a worker killed mid-item costs that item an attempt
    retry = RetryPolicy(max_attempts=20, backoff=0.2, multiplier=2.0, max_backoff=2.0)
    time_limit = 10.0
    maps = {
        "mapping": Map(
            items="page",
            each="one",
            concurrency=500,
            page_size=250,
            attempts=20,
            time_limit=ITEM_TIME_LIMIT,
            on_done="mapped",
        )
    }

    @step(initial=True)
    def preparing(self, ctx: StepContext) -> Literal["prepared"]:
        return "prepared"

    def page(self, ctx: PageContext, offset: int, limit: int) -> Sequence[int]:
        return list(range(offset, min(int(ctx.params["items"]), offset + limit)))

    def one(self, ctx: ItemContext) -> None:
        item_update(ctx.session, "statewright", int(ctx.item))

    @step()
    def joined(self, ctx: StepContext) -> Literal["counted"]:
        join_update(ctx.session, "statewright")
        return "counted"


WORKFLOWS = [BenchMap]

# -- the baseline: a Celery chord ------------------------------------------------------

chord_app = Celery("bench_chord", set_as_current=False)
chord_app.conf.update(
    broker_url=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14"),
    # a chord needs a result backend; Redis counts the chord's finished tasks natively
    result_backend=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14"),
    result_expires=3600,
    task_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    # the delivery guarantees statewright asks of Celery
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": REDELIVER_AFTER},
    result_backend_transport_options={"visibility_timeout": REDELIVER_AFTER},
    task_default_queue="bench-map-raw",
    worker_hijack_root_logger=False,
)
_engines: dict[int, SAEngine] = {}


def _db() -> SAEngine:
    pid = os.getpid()
    if pid not in _engines:
        _engines.clear()
        _engines[pid] = create_engine(
            os.environ["BENCH_DATABASE_URL"], pool_pre_ping=True, pool_size=2
        )
    return _engines[pid]


@chord_app.task(name="bench.map_item")
def chord_item(position: int) -> None:
    """One item of the chord: the same UPDATE, committed in its own transaction."""
    with _db().begin() as connection:
        item_update(connection, "celery", position)


@chord_app.task(name="bench.map_join")
def chord_join(results: list[Any]) -> None:
    """The chord's callback: count the join."""
    with _db().begin() as connection:
        join_update(connection, "celery")
