"""The database's own limit for the steps workload: ``pgbench``, no Python at all.

Each pgbench transaction is the work of one step and nothing else: ``BEGIN``, the
same ``UPDATE`` of one of the benchmark's rows, ``COMMIT``, sent by as many clients
as the other systems have executors, with prepared statements (as psycopg prepares a
statement it runs repeatedly). Its transactions per second are the most steps per
second any system around PostgreSQL could do on this machine in the same minute.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import create_engine, delete, insert

from bench.workload import bench_rows

#: What to install when ``pgbench`` is missing (it ships with PostgreSQL's server).
INSTALL_HINT = (
    "pgbench not found: it ships with PostgreSQL's server package "
    "(Debian/Ubuntu: apt-get install postgresql-15, or the major version of your server; "
    "Homebrew: brew install postgresql)"
)
ROWS = 300
SCRIPT = """\\set k random(1, {rows})
BEGIN;
UPDATE bench_rows SET step = step + 1 WHERE key = 'pgbench-' || :k;
COMMIT;
"""


def available() -> bool:
    return shutil.which("pgbench") is not None


def run_pgbench(url: str, workdir: Path, clients: int = 2, seconds: int = 5) -> dict[str, float]:
    """Run the step's transaction for ``seconds`` on ``clients`` connections; returns
    its rate. ``url`` is the SQLAlchemy URL of the benchmark's database."""
    binary = shutil.which("pgbench")
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(delete(bench_rows).where(bench_rows.c.system == "pgbench"))
            connection.execute(
                insert(bench_rows),
                [
                    {"key": f"pgbench-{i}", "system": "pgbench", "step": 0}
                    for i in range(1, ROWS + 1)
                ],
            )
    finally:
        engine.dispose()
    script = workdir / "pgbench-step.sql"
    script.write_text(SCRIPT.format(rows=ROWS))
    dsn = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
    output = subprocess.run(
        [
            binary,
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={clients}",
            f"--jobs={clients}",
            f"--time={seconds}",
            f"--file={script}",
            dsn,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tps = re.search(r"tps = ([0-9.]+)", output)
    latency = re.search(r"latency average = ([0-9.]+) ms", output)
    if tps is None:
        raise RuntimeError(f"could not read pgbench's rate from its output:\n{output}")
    return {
        "steps_per_second": round(float(tps.group(1)), 1),
        "latency_average_ms": round(float(latency.group(1)), 3) if latency else float("nan"),
        "clients": clients,
        "seconds": seconds,
    }
