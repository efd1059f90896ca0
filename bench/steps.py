"""The steps benchmark: N concurrent runs of ten steps on real workers, for one system.

Every system gets the same database server, the same broker, the same rows and
two executors (a prefork worker with concurrency 2, or two DBOS executors each
running one workflow at a time). The measured window starts when the first run
is started and ends when every row has had its ten updates; a few warm-up runs
go first so imports and connection pools are not measured.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text

from bench import probe
from bench.cluster import BROKER_URL, flush_broker, rss_bytes
from bench.workload import STEPS, bench_rows, metadata
from tests.integration.processes import BIN, ROOT, Process, ProcessGroup

#: ``statewright`` as configured by default (a delivery goes on to its run's next steps
#: for up to ``STATEWRIGHT_CONTINUE_FOR``); ``statewright-msg`` with a message per step.
#: ``dbos``: a queue, each executor taking one workflow at a time; ``dbos-queue``: the
#: same queue with DBOS running ``DBOS_QUEUE_CONCURRENCY`` workflows at once per executor;
#: ``dbos-direct``: ``DBOS.start_workflow`` in the executors, no queue.
#: ``statewright-greedy``: continuing as before fairness (whatever waits behind it).
#: ``statewright-msg-ping``: a message per step, pinging the connection at every checkout
#: (``STATEWRIGHT_DB_PING_AFTER=0``, as before the ping waited for a rest).
SYSTEMS = (
    "statewright",
    "statewright-greedy",
    "statewright-msg",
    "statewright-msg-ping",
    "celery",
    "dbos",
    "dbos-queue",
    "dbos-direct",
)
DBOS_QUEUE_CONCURRENCY = 8


def known_system(system: str) -> bool:
    """One of ``SYSTEMS``, or ``statewright-busy<N>``: statewright continuing for at most
    N ms of a delivery once other messages wait (``STATEWRIGHT_CONTINUE_WHEN_BUSY``)."""
    busy = system.removeprefix("statewright-busy")
    return system in SYSTEMS or (busy != system and busy.isdigit())


QUEUES = {"statewright": "bench-sw", "celery": "bench-raw"}


@dataclass
class StepFigures:
    """What one system did in the measured window."""

    system: str
    runs: int
    steps: int
    seconds: float
    steps_per_second: float
    latency_p50_ms: float
    latency_p99_ms: float
    round_trips_per_step: float
    transactions_per_step: float
    #: Round trips per step by kind of statement.
    breakdown: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare_database(url: str) -> None:
    """Migrate the engine's schema and create the benchmark's own table."""
    from statewright.migrate import upgrade

    upgrade(url)
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


class Bench:
    """One system's processes on a prepared database, and the driver's side of it."""

    def __init__(self, system: str, url: str, workdir: Path) -> None:
        if not known_system(system):
            raise ValueError(f"unknown system {system!r}; allowed: {', '.join(SYSTEMS)}")
        self.system = system
        self.url = url
        self.probe_dir = workdir / f"probe-{system}-{time.monotonic_ns()}"
        self.probe_dir.mkdir(parents=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BENCH_DATABASE_URL": url,
            "BENCH_BROKER_URL": BROKER_URL,
            probe.ENV: str(self.probe_dir),
            "STATEWRIGHT_DATABASE_URL": url,
            "STATEWRIGHT_BROKER_URL": BROKER_URL,
            "STATEWRIGHT_WORKFLOWS": "bench.workload",
            "STATEWRIGHT_DEFAULT_QUEUE": QUEUES["statewright"],
            "STATEWRIGHT_LOG_FORMAT": "json",
            "STATEWRIGHT_RELAY_INTERVAL": "0.5",
        }
        if system.startswith("statewright-msg"):
            env["STATEWRIGHT_CONTINUE_FOR"] = "0"
        if system == "statewright-msg-ping":
            env["STATEWRIGHT_DB_PING_AFTER"] = "0"
        if system == "statewright-greedy":
            env["STATEWRIGHT_CONTINUE_WHEN_BUSY"] = "1000000"
        if system.startswith("statewright-busy"):
            busy_ms = int(system.removeprefix("statewright-busy"))
            env["STATEWRIGHT_CONTINUE_WHEN_BUSY"] = str(busy_ms / 1000)
        if system == "dbos-queue":
            env["BENCH_DBOS_CONCURRENCY"] = str(DBOS_QUEUE_CONCURRENCY)
        if system == "dbos-direct":
            env["BENCH_DBOS_MODE"] = "direct"
        self.cluster = ProcessGroup(env, workdir)
        self.rows = create_engine(url, pool_size=2)
        self._engine: Any = None
        self._started: dict[str, float] = {}
        self.workers: list[Process] = []

    def start(self) -> None:
        flush_broker()
        if self.system.startswith("statewright"):
            self.workers.append(self._worker("statewright.worker_app", QUEUES["statewright"]))
            self.cluster.spawn("relay", [str(BIN / "statewright"), "relay"])
            from bench.workload import WORKFLOWS
            from statewright import Engine, Settings

            self._engine = Engine(Settings.from_env(self.cluster.env), WORKFLOWS)
        elif self.system == "celery":
            self.workers.append(self._worker("bench.workload:raw_app", QUEUES["celery"]))
        else:
            for _ in range(2):
                process = self.cluster.spawn(
                    "dbos", [str(BIN / "python"), "-m", "bench.dbos_worker"]
                )
                process.wait_for("dbos executor ready.")
                self.workers.append(process)

    def _worker(self, app: str, queue: str) -> Process:
        return self.cluster.celery_worker(
            app, ready="bench worker ready.", queue=queue, loglevel="WARNING", node="bench"
        )

    def stop(self) -> None:
        self.cluster.stop(grace=20.0)
        if self._engine is not None:
            self._engine.close()
        self.rows.dispose()

    def worker_rss(self) -> list[int]:
        """Resident memory of every executing process (pool processes of a worker)."""
        sizes = []
        for worker in self.workers:
            pids = worker.pids()
            for pid in pids[1:] if len(pids) > 1 else pids:
                sizes.append(rss_bytes(pid))
        return sizes

    def launch(self, keys: list[str]) -> None:
        """Insert the rows and start one run per key."""
        with self.rows.begin() as connection:
            connection.execute(
                insert(bench_rows), [{"key": k, "system": self.system, "step": 0} for k in keys]
            )
        starter = self._starter()
        if self.system == "dbos-direct":
            from bench.dbos_worker import push_direct

            self._started.update(dict.fromkeys(keys, time.time()))
            push_direct(BROKER_URL, keys)
            return
        if self.system.startswith("dbos"):
            from bench.dbos_worker import enqueue

            now = time.time()
            self._started.update(dict.fromkeys(keys, now))
            enqueue(self.url.replace("+psycopg", ""), keys)
            return
        for key in keys:
            self._started[key] = time.time()
            starter(key)

    def _starter(self) -> Callable[[str], None]:
        if self.system.startswith("statewright"):
            engine = self._engine

            def start_run(key: str) -> None:
                engine.start("bench", {"key": key})

            return start_run
        from bench.workload import start_raw_chain

        return start_raw_chain

    def wait(self, keys: list[str], timeout: float = 1800) -> None:
        """Until every key's row has had its ten updates (keys share their prefix)."""
        prefix = keys[0].rsplit("-", 1)[0] + "-"
        deadline = time.monotonic() + timeout
        statement = select(func.count()).where(
            bench_rows.c.key.startswith(prefix, autoescape=True), bench_rows.c.step == STEPS
        )
        while time.monotonic() < deadline:
            with self.rows.connect() as connection:
                if connection.execute(statement).scalar_one() >= len(keys):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.system}: runs did not finish within {timeout} s")

    def measure(self, runs: int, prefix: str) -> StepFigures:
        """Start ``runs`` runs at once and measure them to the end."""
        keys = [f"{prefix}-{i}" for i in range(runs)]
        time.sleep(0.5)
        before = probe.read_counts(self.probe_dir)
        started = time.perf_counter()
        self.launch(keys)
        self.wait(keys)
        seconds = time.perf_counter() - started
        time.sleep(0.6)  # the probes write their counters every 0.2 s
        after = probe.read_counts(self.probe_dir)
        steps = runs * STEPS
        latencies = self._latencies(set(keys))
        return StepFigures(
            system=self.system,
            runs=runs,
            steps=steps,
            seconds=round(seconds, 3),
            steps_per_second=round(steps / seconds, 1),
            latency_p50_ms=round(_percentile(latencies, 50) * 1000, 2),
            latency_p99_ms=round(_percentile(latencies, 99) * 1000, 2),
            round_trips_per_step=round((after["statements"] - before["statements"]) / steps, 2),
            transactions_per_step=round(
                (after["transactions"] - before["transactions"]) / steps, 2
            ),
            breakdown={
                kind: round((count - before["kinds"].get(kind, 0)) / steps, 3)
                for kind, count in sorted(after["kinds"].items())
                if count - before["kinds"].get(kind, 0) > 0
            },
        )

    def _latencies(self, keys: set[str]) -> list[float]:
        """Per step: from the moment it became due (the previous handler returned, or the
        run was started) to its handler starting."""
        marks: dict[tuple[str, int], tuple[float, float]] = {}
        for key, index, began, ended in probe.read_marks(self.probe_dir):
            if key in keys:
                marks.setdefault((key, index), (began, ended))
        latencies = []
        for (key, index), (began, _) in marks.items():
            due = self._started[key] if index == 0 else marks.get((key, index - 1), (0, 0))[1]
            if due:
                latencies.append(max(began - due, 0.0))
        return latencies


def _percentile(values: list[float], pct: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def run_steps(system: str, url: str, workdir: Path, runs: int, warmup: int = 20) -> StepFigures:
    """Warm up, then measure ``runs`` concurrent runs of ``system``."""
    bench = Bench(system, url, workdir)
    try:
        bench.start()
        bench.measure(warmup, f"{system}-warm-{time.monotonic_ns()}")
        return bench.measure(runs, f"{system}-{time.monotonic_ns()}")
    finally:
        bench.stop()


#: Ids shaped like the engine's: a creation time in milliseconds (the past month), then
#: random hex.
SEED_ID = (
    "lpad(to_hex((extract(epoch from now() - interval '30 days') * 1000)::bigint + g * 2), 12, '0')"
    " || substr(md5('seed' || g), 1, 20)"
)


def seed_finished_runs(url: str, total: int) -> None:
    """Fill the engine's tables with ``total`` finished ten-step runs (and their history)."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            have = connection.execute(
                text("SELECT count(*) FROM workflow_runs WHERE workflow = 'seeded'")
            ).scalar_one()
            if have >= total:
                return
            connection.execute(
                text(
                    """
                    INSERT INTO workflow_runs (id, workflow, definition_version, state, status,
                        params, context, attempt, polls, token, claimed, state_entered_at,
                        entry_seq, history_len, pause_requested, cancel_requested,
                        created_at, updated_at, finished_at)
                    SELECT {seed_id}, 'seeded', 'v1', 'finished', 'succeeded',
                        '{"key": "seeded"}', '{}', 0, 0, 11, false, now(), 10, 10,
                        false, false, now() - interval '1 day', now(), now()
                    FROM generate_series(CAST(:start AS integer), CAST(:stop AS integer)) AS g
                    """.replace("{seed_id}", SEED_ID)
                ),
                {"start": have + 1, "stop": total},
            )
            connection.execute(
                text(
                    """
                    INSERT INTO workflow_transitions (run_id, seq, from_state, trigger,
                        to_state, attempt, token, at, duration_ms)
                    SELECT {seed_id}, s, 's' || (s - 1), 'done' || (s - 1),
                        's' || s, 1, s, now(), 1.0
                    FROM generate_series(CAST(:start AS integer), CAST(:stop AS integer)) AS g,
                        generate_series(1, 10) AS s
                    """.replace("{seed_id}", SEED_ID)
                ),
                {"start": have + 1, "stop": total},
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()


def seed_aged_runs(url: str, runs: int, days: int = 40) -> None:
    """Add ``runs`` ten-step runs that finished ``days`` ago (a millisecond apart), with
    their history (ten rows each), in two set-based statements (``generate_series``),
    then analyze."""
    aged_id = (
        "lpad(to_hex((extract(epoch from now() - interval '60 days') * 1000)::bigint + g * 2),"
        " 12, '0') || substr(md5('aged' || g), 1, 20)"
    )
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL synchronous_commit = off"))
            connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
            connection.execute(
                text(
                    """
                    INSERT INTO workflow_runs (id, workflow, definition_version, state, status,
                        params, context, attempt, polls, token, claimed, state_entered_at,
                        entry_seq, history_len, pause_requested, cancel_requested,
                        created_at, updated_at, finished_at)
                    SELECT {aged_id}, 'aged', 'v1', 'finished', 'succeeded',
                        '{"key": "aged"}', '{}', 0, 0, 11, false, now(), 10, 10,
                        false, false, now() - make_interval(days => :days + 1),
                        now() - make_interval(days => :days, secs => g * 0.001),
                        now() - make_interval(days => :days, secs => g * 0.001)
                    FROM generate_series(1, CAST(:runs AS integer)) AS g
                    """.replace("{aged_id}", aged_id)
                ),
                {"runs": runs, "days": days},
            )
            connection.execute(
                text(
                    """
                    INSERT INTO workflow_transitions (run_id, seq, from_state, trigger,
                        to_state, attempt, token, at, duration_ms)
                    SELECT {aged_id}, s, 's' || (s - 1), 'done' || (s - 1),
                        's' || s, 1, s, now() - make_interval(days => :days), 1.0
                    FROM generate_series(1, CAST(:runs AS integer)) AS g,
                        generate_series(1, 10) AS s
                    """.replace("{aged_id}", aged_id)
                ),
                {"runs": runs, "days": days},
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
