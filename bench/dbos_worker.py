"""DBOS running the benchmark's ten steps: ``python -m bench.dbos_worker``.

One process is one DBOS executor. Each step is a DBOS datasource transaction: the
step's UPDATE and DBOS's checkpoint of it commit together, the same guarantee a
statewright step gives. Isolation is READ COMMITTED, as statewright uses.

``BENCH_DBOS_MODE`` says how workflows reach the executor:

- ``queue`` (the default): the executor takes workflows from the ``bench`` queue,
  ``BENCH_DBOS_CONCURRENCY`` at a time (1: two executors match a prefork worker with
  concurrency 2; more: DBOS's own threads run several workflows at once, as a queue
  without a worker limit does by default);
- ``direct``: the way an application starts workflows from its own code: the executor
  takes keys from a Redis list (as it would take requests) and calls
  ``DBOS.start_workflow`` for each, which runs it at once on DBOS's thread pool,
  with no queue and no polling in between.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from bench import probe
from bench.workload import STEPS, do_step

QUEUE = "bench"
WORKFLOW = "bench_ten_steps"
#: The Redis list the ``direct`` executors take keys from.
DIRECT_KEYS = "bench-dbos-direct"


def main() -> None:
    from dbos import DBOS, SQLAlchemyDatasource  # the bench extra

    url = os.environ["BENCH_DATABASE_URL"]
    concurrency = int(os.environ.get("BENCH_DBOS_CONCURRENCY", "1"))
    mode = os.environ.get("BENCH_DBOS_MODE", "queue")
    if mode not in ("queue", "direct"):
        raise SystemExit(f"BENCH_DBOS_MODE {mode!r} is not allowed; use queue or direct")
    DBOS(
        config={
            "name": "statewright-bench",
            "system_database_url": url,
            "log_level": "WARNING",
            "executor_id": f"bench-{os.getpid()}",
        }
    )
    datasource = SQLAlchemyDatasource.create(url)

    @datasource.transaction(isolation_level="READ COMMITTED")
    def step_tx(key: str, index: int) -> None:
        do_step(datasource.sql_session(), key, index)

    @DBOS.workflow(name=WORKFLOW)
    def ten_steps(key: str) -> None:
        for index in range(STEPS):
            step_tx(key, index)

    DBOS.launch()
    if mode == "queue":
        DBOS.register_queue(
            QUEUE,
            worker_concurrency=concurrency,
            polling_interval_sec=0.01,
            on_conflict="always_update",
        )
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if mode == "direct":
        import redis

        client = redis.Redis.from_url(os.environ["BENCH_BROKER_URL"])
        print("dbos executor ready.", flush=True)
        while not stop.is_set():
            popped = client.blpop([DIRECT_KEYS], timeout=0.2)
            if popped is not None:
                DBOS.start_workflow(ten_steps, popped[1].decode())
    else:
        print("dbos executor ready.", flush=True)
        stop.wait()
    probe.dump()
    DBOS.destroy()


def enqueue(url: str, keys: list[str]) -> None:
    """Enqueue one ten-step workflow per key from outside the executors."""
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=url)
    try:
        for key in keys:
            client.enqueue({"workflow_name": WORKFLOW, "queue_name": QUEUE}, key)
    finally:
        client.destroy()


def push_direct(broker_url: str, keys: list[str]) -> None:
    """Hand keys to the ``direct`` executors, one workflow each."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        client.rpush(DIRECT_KEYS, *keys)
    finally:
        client.close()


if __name__ == "__main__":
    main()
