"""Child processes with their output in a log file: the real workers and relays that the
integration tests and the benchmarks start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Process:
    """A child process, in a session of its own, whose output goes to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name} never printed {text!r}:\n{self.output()[-3000:]}")

    def pids(self) -> list[int]:
        """This process and its children (a prefork worker's pool processes; Linux)."""
        pid = self.popen.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return [pid]
        return [pid] + [int(child) for child in children.split()]

    def kill(self) -> None:
        """SIGKILL the process and everything it forked, as a crash would."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it is still running after ``grace`` seconds."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()


def spawn(name: str, argv: list[str], env: Mapping[str, str], log: Path) -> Process:
    """Start ``argv`` from the project root in a session of its own, output to ``log``."""
    with log.open("wb") as handle:
        popen = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(name, popen, log)


@dataclass
class ProcessGroup:
    """Processes started with one environment, each logging to a file in ``logs``."""

    env: dict[str, str]
    logs: Path
    processes: list[Process] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str]) -> Process:
        process = spawn(name, argv, self.env, self.logs / f"{name}-{len(self.processes)}.log")
        self.processes.append(process)
        return process

    def celery_worker(
        self,
        app: str,
        *,
        ready: str,
        concurrency: int = 2,
        queue: str | None = None,
        loglevel: str = "INFO",
        node: str = "w",
    ) -> Process:
        """A prefork ``celery worker`` of ``app``, once it has printed ``ready``."""
        argv = [
            str(BIN / "celery"),
            "-A",
            app,
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            loglevel,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *(["-Q", queue] if queue else []),
            "-n",
            f"{node}{len(self.processes)}-{os.getpid()}@%h",  # unique across test sessions
        ]
        process = self.spawn("worker", argv)
        process.wait_for(ready)
        return process

    def stop(self, grace: float = 15.0) -> None:
        for process in self.processes:
            process.stop(grace)
