"""DBOS running the benchmark's ten steps: ``python -m bench.dbos_worker``.

One process is one DBOS executor. It takes workflows from the ``bench`` queue one
at a time (``worker_concurrency=1``, so two executors match a prefork worker with
concurrency 2) and runs each step as a DBOS datasource transaction: the step's
UPDATE and DBOS's checkpoint of it commit together, the same guarantee a
statewright step gives. Isolation is READ COMMITTED, as statewright uses.
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


def main() -> None:
    from dbos import DBOS, SQLAlchemyDatasource  # the bench extra

    url = os.environ["BENCH_DATABASE_URL"]
    concurrency = int(os.environ.get("BENCH_DBOS_CONCURRENCY", "1"))
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
    DBOS.register_queue(
        QUEUE,
        worker_concurrency=concurrency,
        polling_interval_sec=0.01,
        on_conflict="always_update",
    )
    print("dbos executor ready.", flush=True)
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
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


if __name__ == "__main__":
    main()
