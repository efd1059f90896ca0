"""How fast the test harness runs a whole relocation (real polling and backoff, virtual time).

    python -m bench.harness_relocation [--runs 20]

Prints, per run, the wall time the harness took next to the virtual time the run
covered (the sandbox validation polls, a retried import with its backoff).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from statewright import Engine, InMemoryMetrics, Settings, VirtualClock, migrate
from statewright.logs import configure_logging
from statewright.models import User
from statewright.testing import WorkflowHarness
from statewright.workflows.relocation import Relocation, RelocationConfig, start_relocation

DOCUMENT: dict[str, Any] = {
    "format": "statewright.relocation",
    "version": 1,
    "source": {},
    "organizations": [{"id": 1, "slug": "acme", "name": "Acme"}],
    "users": [{"id": u, "username": f"u{u}", "email": f"u{u}@acme.example"} for u in range(1, 21)],
    "members": [{"organization_id": 1, "user_id": u, "role": "member"} for u in range(1, 21)],
    "teams": [],
    "projects": [],
    "project_teams": [],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    configure_logging("json", level="ERROR")
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'bench.db'}"
        migrate(url)
        engine = Engine(
            Settings(database_url=url),
            [Relocation(RelocationConfig(email_backend=f"file:{scratch}/mail"))],
            clock=VirtualClock(),
            metrics=InMemoryMetrics(),
            rng=random.Random(1),
        )
        with engine.db.transaction() as session:
            session.add(User(username="owner", email="o@x.example", created_at=datetime.now(UTC)))
        harness = WorkflowHarness(engine)
        walls, virtuals = [], []
        for n in range(runs):
            document = {
                **DOCUMENT,
                "organizations": [{"id": 1, "slug": f"acme-{n}", "name": "Acme"}],
            }
            document["users"] = [
                {**u, "username": f"{u['username']}-{n}"} for u in DOCUMENT["users"]
            ]
            harness.fail_at("importing", 1, ConnectionError("injected"))
            started, virtual_start = time.perf_counter(), engine.clock.now()
            run = start_relocation(engine, json.dumps(document).encode(), owner="o@x.example")
            info = harness.run(run.id)
            assert info.status == "succeeded", info.failure_reason
            walls.append(time.perf_counter() - started)
            virtuals.append((engine.clock.now() - virtual_start).total_seconds())
            harness.clear_failures()
        engine.close()
    print(f"{'figure':<34}{'value':>12}")
    print(f"{'runs':<34}{runs:>12}")
    print(f"{'wall time per run, median (s)':<34}{statistics.median(walls):>12.3f}")
    print(f"{'wall time per run, max (s)':<34}{max(walls):>12.3f}")
    print(f"{'virtual time per run, median (s)':<34}{statistics.median(virtuals):>12.1f}")
    print(f"{'virtual / wall':<34}{statistics.median(virtuals) / statistics.median(walls):>12.0f}")


if __name__ == "__main__":
    main()
