"""``statewright demo``: the onboarding workflow end to end on the embedded default."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from engine.api import Engine
from engine.config import Settings
from engine.embedded import EmbeddedWorker
from engine.migrate import upgrade
from workflows import Onboarding


def run_demo(console: Console, *, runs: int, path: Path = Path("statewright-demo.db")) -> int:
    """Start ``runs`` onboarding runs, show progress, print a summary; 0 if all succeeded."""
    path.unlink(missing_ok=True)
    settings = Settings(database_url=f"sqlite:///{path}")
    upgrade(settings.database_url)
    engine = Engine(settings, [Onboarding])
    started = time.perf_counter()
    with EmbeddedWorker(engine):
        ids = [
            engine.start(
                "onboarding", {"email": f"owner{i}@example.com", "flaky_attempts": i % 3}
            ).id
            for i in range(runs)
        ]
        with Progress(console=console) as progress:
            bar = progress.add_task("onboarding runs", total=runs)
            while True:
                finished = [engine.get(i) for i in ids]
                done = sum(1 for r in finished if r.finished)
                progress.update(bar, completed=done)
                if done == runs:
                    break
                time.sleep(0.1)
    elapsed = time.perf_counter() - started
    return _summary(console, engine, ids, elapsed)


def _summary(console: Console, engine: Engine, ids: list[str], elapsed: float) -> int:
    statuses = Counter(engine.get(i).status for i in ids)
    triggers: Counter[str] = Counter()
    for run_id in ids:
        triggers.update(h.trigger for h in engine.history(run_id))
    table = Table("what", "count", title=f"{len(ids)} runs in {elapsed:.1f}s")
    for status, count in sorted(statuses.items()):
        table.add_row(f"runs {status}", str(count))
    for trigger, count in sorted(triggers.items()):
        table.add_row(f"history: {trigger}", str(count))
    console.print(table)
    sample = ids[-1]
    history = Table("#", "from", "trigger", "to", "attempt", title=f"run {sample}")
    for h in engine.history(sample):
        history.add_row(str(h.seq), h.from_state or "", h.trigger, h.to_state, str(h.attempt))
    console.print(history)
    engine.close()
    return 0 if set(statuses) == {"succeeded"} else 1
