"""Processes and databases for the benchmarks: one fresh database, real workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kombu import Connection
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_SERVER = os.environ.get("BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
DATABASE = "statewright_bench"


def database_url(name: str = DATABASE) -> str:
    return f"{PG_SERVER}/{name}"


def fresh_database(name: str = DATABASE) -> str:
    """Drop and create ``name``; returns its URL."""
    admin = create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
    return database_url(name)


def drop_database(name: str = DATABASE) -> None:
    admin = create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    finally:
        admin.dispose()


def flush_broker(url: str = BROKER_URL) -> None:
    """Empty the benchmark's broker database (a Redis database of its own)."""
    with Connection(url) as connection:
        client = connection.default_channel.client  # type: ignore[attr-defined]
        client.flushdb()


@dataclass
class Process:
    """A child process with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} never printed {text!r}:\n{self.output()[-3000:]}")

    def pids(self) -> list[int]:
        """This process and its children (a prefork worker's pool processes)."""
        found = [self.popen.pid]
        try:
            children = Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children").read_text()
        except OSError:
            return found
        return found + [int(pid) for pid in children.split()]

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)


@dataclass
class Cluster:
    """The processes of one benchmark, sharing an environment and a log directory."""

    env: dict[str, str]
    logs: Path
    processes: list[Process] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str]) -> Process:
        log = self.logs / f"{name}-{len(self.processes)}.log"
        with log.open("wb") as handle:
            popen = subprocess.Popen(
                argv,
                env=self.env,
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def celery_worker(self, app: str, queue: str, concurrency: int = 2) -> Process:
        process = self.spawn(
            "worker",
            [
                str(BIN / "celery"),
                "-A",
                app,
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-Q",
                queue,
                "-n",
                f"bench{len(self.processes)}@%h",
            ],
        )
        process.wait_for("bench worker ready.")
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` now (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
