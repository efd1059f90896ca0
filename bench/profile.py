"""Where a step's time goes, per process: ``python -m bench.profile``.

    python -m bench.profile --systems statewright-msg,celery --runs 300 [--py-spy DIR]

For each system, after a warm-up: the CPU time (user + system, from ``/proc``) that
every process of the system spent in the measured window, per step: the worker's
main process, each pool process, the relay, the PostgreSQL backends serving them and
the Redis server. With ``--py-spy DIR``, each Python process is also sampled by
``py-spy record --idle`` (``--cpu``: without ``--idle``) for the window (raw collapsed
stacks, in DIR), and the
heaviest frames of the pool processes are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.cluster import drop_database, fresh_database
from bench.steps import Bench, known_system, prepare_database
from bench.workload import STEPS
from tests.integration.processes import BIN

TICK = os.sysconf("SC_CLK_TCK")
#: A database of its own, so a profile never meets a running ``make bench``.
DATABASE = "statewright_profile"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def backends(url: str) -> list[int]:
    """The PostgreSQL backends connected to the benchmark's database."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
    finally:
        engine.dispose()
    return [int(r[0]) for r in rows]


def redis_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "redis-server":
                    return int(entry.name)
            except OSError:
                continue
    return None


def profile(
    system: str, url: str, workdir: Path, runs: int, spy: Path | None, cpu_only: bool = False
) -> None:
    bench = Bench(system, url, workdir)
    try:
        bench.start()
        bench.measure(runs, f"{system}-warm-{time.monotonic_ns()}")
        roles: dict[int, str] = {}
        for process in bench.cluster.processes:
            pids = process.pids()
            roles[pids[0]] = f"{process.name} (main)" if len(pids) > 1 else process.name
            for index, child in enumerate(pids[1:]):
                roles[child] = f"{process.name} pool {index + 1}"
        python_pids = dict(roles)
        for pid in backends(url):
            roles[pid] = "postgres backends"
        redis = redis_pid()
        if redis is not None:
            roles[redis] = "redis-server (shared)"
        spies: list[subprocess.Popen[bytes]] = []
        if spy is not None:
            spy.mkdir(parents=True, exist_ok=True)
            for pid, role in python_pids.items():
                out = spy / f"{system}-{role.replace(' ', '_')}-{pid}.txt"
                spies.append(
                    subprocess.Popen(
                        [
                            str(shutil.which("py-spy") or BIN / "py-spy"),
                            "record",
                            *([] if cpu_only else ["--idle"]),
                            "--format",
                            "raw",
                            "--rate",
                            "200",
                            "--pid",
                            str(pid),
                            "--output",
                            str(out),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(1.0)
        before = {pid: cpu_seconds(pid) for pid in roles}
        figures = bench.measure(runs, f"{system}-{time.monotonic_ns()}")
        after = {pid: cpu_seconds(pid) for pid in roles}
        for process in spies:
            process.send_signal(2)
        for process in spies:
            process.wait(30)
    finally:
        bench.stop()
    steps = runs * STEPS
    by_role: Counter[str] = Counter()
    for pid, role in roles.items():
        by_role[role] += after[pid] - before[pid]
    total = sum(by_role.values())
    print(f"\n{system}: {figures.steps_per_second:.0f} steps/s, CPU per step by process (ms)")
    for role, seconds in sorted(by_role.items()):
        print(f"  {role:28s} {seconds * 1000 / steps:6.3f}")
    print(f"  {'total':28s} {total * 1000 / steps:6.3f}")
    if spy is not None:
        for path in sorted(spy.glob(f"{system}-worker_pool_*.txt")):
            print(f"  heaviest frames of {path.name} (share of samples, own + callees):")
            for frame, share in heaviest(path):
                print(f"    {share:5.1%}  {frame}")


def heaviest(path: Path, top: int = 25) -> list[tuple[str, float]]:
    """Frames by the share of samples they appear in (inclusive), from raw stacks."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        for frame in set(stack.split(";")):
            inclusive[frame] += samples
    return [(frame, n / total) for frame, n in inclusive.most_common(top)] if total else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--systems", default="statewright-msg,celery")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--py-spy", type=Path, default=None, dest="spy")
    parser.add_argument(
        "--cpu", action="store_true", help="py-spy samples only on CPU (without --idle)"
    )
    args = parser.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in systems if not known_system(s)]
    if bad:
        parser.error(f"unknown system(s) {', '.join(bad)}")
    url = fresh_database(DATABASE)
    prepare_database(url)
    try:
        with tempfile.TemporaryDirectory(prefix="statewright-profile-") as tmp:
            for system in systems:
                profile(system, url, Path(tmp), args.runs, args.spy, args.cpu)
    finally:
        drop_database(DATABASE)


if __name__ == "__main__":
    main()
