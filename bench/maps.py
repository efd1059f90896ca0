"""The Map benchmark: N items, each one ``UPDATE``, joined once, for one system.

statewright runs a Map state of task items (``bench.map_workload.BenchMap``); the
baseline is a Celery chord of N tasks with a callback. Each gets two prefork workers of
concurrency 1 (two executors, as in the steps benchmark), the same Redis broker and
the same PostgreSQL database; statewright also gets its relay. The clock runs from
starting the run (or sending the chord) to the join's commit.

With ``kill``, once half of the items have committed, one worker and its pool are
SIGKILLed and a new worker is started in its place (as a supervisor would). Then the
driver waits for the join, up to ``timeout`` seconds, and ``settle`` seconds more for
anything arriving late (a second join, a duplicate item). It reports what really
happened: items done once, lost (never done), done more than once, and joins.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from celery import chord
from kombu import Connection
from sqlalchemy import create_engine, func, insert, select, text

from bench.cluster import BROKER_URL, flush_broker
from bench.map_workload import LEASE_GRACE, REDELIVER_AFTER, bench_items, bench_joins, metadata
from tests.integration.processes import BIN, ROOT, Process, ProcessGroup

MAP_SYSTEMS = ("statewright", "celery")
MAP_CASES = ("undisturbed", "killed")


def broker_uptime(url: str = BROKER_URL) -> int:
    """Seconds Redis has been up: a run during which it fell is no measurement."""
    with Connection(url) as connection:
        client = connection.default_channel.client  # type: ignore[attr-defined]
        return int(client.info("server")["uptime_in_seconds"])


QUEUES = {"statewright": "bench-map-sw", "celery": "bench-map-raw"}


@dataclass
class MapFigures:
    """What one Map run did."""

    system: str
    items: int
    killed: bool
    #: From the start to the join's commit; None if the join never ran in time.
    seconds_to_join: float | None
    items_per_second: float | None
    joins: int
    items_done_once: int
    items_lost: int
    items_duplicated: int
    #: Extra ``UPDATE`` commits beyond one per item.
    duplicate_updates: int
    #: Items committed when the worker was killed, and how long after the start.
    done_at_kill: int | None
    kill_after_seconds: float | None
    #: ``joined``, ``hung`` (no join within the timeout), ``joined twice`` ...
    outcome: str
    waited_seconds: float
    #: Redis restarted during the run (the figures do not count).
    broker_restarted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare_map_database(url: str) -> None:
    """Migrate the engine's schema and create the benchmark's tables."""
    from statewright.migrate import upgrade

    upgrade(url)
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


def _reset_rows(url: str, system: str, items: int) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(bench_items.delete().where(bench_items.c.system == system))
            connection.execute(bench_joins.delete().where(bench_joins.c.system == system))
            connection.execute(
                text(
                    "INSERT INTO bench_items (system, position, done) "
                    "SELECT :system, g, 0 FROM generate_series(0, :last) AS g"
                ),
                {"system": system, "last": items - 1},
            )
            connection.execute(insert(bench_joins), [{"system": system, "joins": 0, "at": None}])
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE bench_items"))
    finally:
        engine.dispose()


class MapBench:
    """One system's workers on a prepared database, and the driver's side of it."""

    def __init__(self, system: str, url: str, workdir: Path) -> None:
        if system not in MAP_SYSTEMS:
            raise ValueError(f"unknown Map system {system!r}; allowed: {', '.join(MAP_SYSTEMS)}")
        self.system = system
        self.url = url
        logs = workdir / f"map-{system}-{time.monotonic_ns()}"
        logs.mkdir(parents=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BENCH_DATABASE_URL": url,
            "BENCH_BROKER_URL": BROKER_URL,
            "STATEWRIGHT_DATABASE_URL": url,
            "STATEWRIGHT_BROKER_URL": BROKER_URL,
            "STATEWRIGHT_WORKFLOWS": "bench.map_workload",
            "STATEWRIGHT_DEFAULT_QUEUE": QUEUES["statewright"],
            "STATEWRIGHT_LOG_FORMAT": "json",
            "STATEWRIGHT_RELAY_INTERVAL": "0.5",
            # the same redelivery delay the chord's Redis visibility timeout gives
            "STATEWRIGHT_DISPATCH_TIMEOUT": str(REDELIVER_AFTER),
            "STATEWRIGHT_LEASE_GRACE": str(LEASE_GRACE),
        }
        self.cluster = ProcessGroup(env, logs)
        self.rows = create_engine(url, pool_size=2)
        self.workers: list[Process] = []
        self._engine: Any = None

    def start(self) -> None:
        flush_broker()
        for _ in range(2):
            self.workers.append(self._worker())
        if self.system == "statewright":
            self.cluster.spawn("relay", [str(BIN / "statewright"), "relay"])
            from bench.map_workload import WORKFLOWS
            from statewright import Engine, Settings

            self._engine = Engine(Settings.from_env(self.cluster.env), WORKFLOWS)

    def _worker(self) -> Process:
        app = (
            "statewright.worker_app"
            if self.system == "statewright"
            else "bench.map_workload:chord_app"
        )
        return self.cluster.celery_worker(
            app,
            ready="bench map worker ready.",
            concurrency=1,
            queue=QUEUES[self.system],
            loglevel="WARNING",
            node="benchmap",
        )

    def stop(self) -> None:
        """Every process this bench started, SIGTERM then SIGKILL."""
        self.cluster.stop(grace=10.0)
        if self._engine is not None:
            self._engine.close()
        self.rows.dispose()

    def launch(self, items: int) -> None:
        if self.system == "statewright":
            self._engine.start("bench_map", {"items": items})
            return
        from bench.map_workload import chord_item, chord_join

        chord(chord_item.si(position) for position in range(items))(chord_join.s())

    def counts(self) -> tuple[int, int, int, float | None]:
        """Items done at least once, extra commits, joins and the last join's time."""
        with self.rows.connect() as connection:
            done, extra = connection.execute(
                select(
                    func.count().filter(bench_items.c.done > 0),
                    func.coalesce(
                        func.sum(bench_items.c.done - 1).filter(bench_items.c.done > 1), 0
                    ),
                ).where(bench_items.c.system == self.system)
            ).one()
            joins, at = connection.execute(
                select(bench_joins.c.joins, bench_joins.c.at).where(
                    bench_joins.c.system == self.system
                )
            ).one()
        return int(done), int(extra), int(joins), at

    def measure(self, items: int, *, kill: bool, timeout: float, settle: float) -> MapFigures:
        _reset_rows(self.url, self.system, items)
        time.sleep(0.5)
        uptime = broker_uptime()
        started_wall = time.time()
        started = time.monotonic()
        self.launch(items)
        done_at_kill: int | None = None
        kill_after: float | None = None
        deadline = started + timeout
        joined_seen: float | None = None
        while True:
            now = time.monotonic()
            done, _, joins, _ = self.counts()
            if kill and done_at_kill is None and done >= items // 2:
                victim = self.workers.pop(0)
                victim.kill()
                done_at_kill, kill_after = done, now - started
                self.workers.append(self._worker())
            if joins and joined_seen is None:
                joined_seen = now
            if joined_seen is not None and now >= joined_seen + settle:
                break
            if joined_seen is None and now >= deadline:
                break
            time.sleep(0.2)
        waited = time.monotonic() - started
        restarted = broker_uptime() < uptime + waited - 5
        done, extra, joins, at = self.counts()
        with self.rows.connect() as connection:
            once, lost, duplicated = connection.execute(
                select(
                    func.count().filter(bench_items.c.done == 1),
                    func.count().filter(bench_items.c.done == 0),
                    func.count().filter(bench_items.c.done > 1),
                ).where(bench_items.c.system == self.system)
            ).one()
        seconds = round(at - started_wall, 3) if at is not None else None
        if joins == 0:
            outcome = f"hung: no join after {waited:.0f} s"
        elif joins == 1:
            outcome = "joined once"
        else:
            outcome = f"joined {joins} times"
        if joins and lost:
            outcome += f", {lost} item(s) never done"
        if duplicated:
            outcome += f", {duplicated} item(s) done twice or more"
        if joins and not lost and not duplicated:
            outcome += ", every item once"
        if restarted:
            outcome = "Redis restarted during the run: not a measurement; " + outcome
        return MapFigures(
            system=self.system,
            items=items,
            killed=kill,
            seconds_to_join=seconds,
            items_per_second=round(items / seconds, 1) if seconds else None,
            joins=joins,
            items_done_once=int(once),
            items_lost=int(lost),
            items_duplicated=int(duplicated),
            duplicate_updates=extra,
            done_at_kill=done_at_kill,
            kill_after_seconds=round(kill_after, 1) if kill_after is not None else None,
            outcome=outcome,
            waited_seconds=round(waited, 1),
            broker_restarted=restarted,
        )


def run_map(
    system: str,
    url: str,
    workdir: Path,
    items: int,
    *,
    kill: bool,
    timeout: float,
    settle: float = 30.0,
) -> MapFigures:
    """Start ``system``'s workers, warm them up with a Map of 20 items, then measure
    ``items`` (killing a worker half-way with ``kill``); stops every process it started."""
    bench = MapBench(system, url, workdir)
    try:
        bench.start()
        bench.measure(20, kill=False, timeout=120, settle=0)
        return bench.measure(items, kill=kill, timeout=timeout, settle=settle)
    finally:
        bench.stop()
