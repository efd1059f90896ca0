"""How fast the console's runs list stays with a million runs: ``python -m bench.console_pages``.

Seeds ``--runs`` runs (default 1,000,000) straight in SQL into a PostgreSQL database of
its own (several workflows and statuses, 90 days of start times, params with an email
and an organization), then times the same ``Engine.search`` and ``Engine.status_counts``
calls the console makes: first pages, a page deep in the list reached by its cursor,
each filter, and counts by status. OFFSET paging of the same deep page is timed beside
keyset paging for comparison. Prints the median of several calls, in milliseconds.
Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, select, text

from bench.cluster import drop_database, fresh_database
from statewright import Engine, Settings, migrate
from statewright.models.engine import WorkflowRun
from statewright.queries import RunFilter, RunInfo

DATABASE = "statewright_bench_console"
SEED = """
INSERT INTO workflow_runs (id, workflow, definition_version, state, status, params, context,
    attempt, polls, token, claimed, state_entered_at, entry_seq, history_len,
    pause_requested, cancel_requested, created_at, updated_at, finished_at)
SELECT lpad(to_hex((extract(epoch from start) * 1000)::bigint), 12, '0')
        || substr(md5('run' || g), 1, 20),
    CASE WHEN g % 10 = 0 THEN 'relocation' ELSE 'onboarding' END, 'v1',
    CASE WHEN g % 10 = 0 THEN (ARRAY['uploading', 'preprocessing', 'validating', 'importing',
        'postprocessing', 'notifying', 'completed'])[1 + g % 7]
        ELSE (ARRAY['provisioning', 'verifying', 'welcoming', 'active'])[1 + g % 4] END,
    CASE WHEN g % 100 < 90 THEN 'succeeded' WHEN g % 100 < 95 THEN 'failed'
        WHEN g % 100 < 98 THEN 'running' WHEN g % 100 < 99 THEN 'paused' ELSE 'cancelled' END,
    jsonb_build_object('email', 'user' || g || '@example.com', 'org', 'org-' || (g % 5000)),
    '{}', 1, 0, 5, false, start, 4, 5, false, false, start, start, start
FROM (SELECT g, now() - interval '90 days' + (g * interval '90 days') / :total AS start
      FROM generate_series(1, :total) AS g) AS s
"""


def seed(url: str, total: int) -> None:
    migrate(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(SEED), {"total": total})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE workflow_runs"))
    engine.dispose()


def median_ms(call: Callable[[], Any], repeat: int) -> float:
    call()  # warm the cache and the statement cache, as a console that is open would be
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def deep_cursor(engine: Engine, depth: int) -> str:
    """The cursor of the page that starts ``depth`` runs from the newest."""
    with engine.db.reads() as session:
        row = session.execute(
            select(WorkflowRun)
            .order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc())
            .offset(depth - 1)
            .limit(1)
        ).scalar_one()
        from statewright.queries import encode_cursor

        return encode_cursor(RunInfo.of(row))


def offset_page(engine: Engine, depth: int) -> None:
    with engine.db.reads() as session:
        list(
            session.execute(
                select(WorkflowRun)
                .order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc())
                .offset(depth)
                .limit(50)
            ).scalars()
        )


def measurements(engine: Engine, total: int) -> list[tuple[str, Callable[[], Any]]]:
    depth = total // 2
    cursor = deep_cursor(engine, depth)
    now = engine.clock.now()
    day = RunFilter(started_from=now - timedelta(days=45), started_to=now - timedelta(days=44))
    return [
        ("first page, no filter", lambda: engine.search(limit=50)),
        (f"page at run {depth:,} by cursor", lambda: engine.search(after=cursor, limit=50)),
        (f"page at run {depth:,} by OFFSET", lambda: offset_page(engine, depth)),
        ("status = failed", lambda: engine.search(RunFilter(status="failed"))),
        (
            "status = failed, deep cursor",
            lambda: engine.search(RunFilter(status="failed"), after=cursor),
        ),
        (
            "workflow = relocation, status = paused",
            lambda: engine.search(RunFilter(workflow="relocation", status="paused")),
        ),
        ("state = importing", lambda: engine.search(RunFilter(state="importing"))),
        ("started within one day, 45 days ago", lambda: engine.search(day)),
        ("text in params: common ('org-42')", lambda: engine.search(RunFilter(text="org-42"))),
        ("text in params: one run", lambda: engine.search(RunFilter(text="user777777@"))),
        ("counts by status, all runs", lambda: engine.status_counts()),
        (
            "counts by status, workflow = relocation",
            lambda: engine.status_counts(RunFilter(workflow="relocation")),
        ),
        ("counts by status, one day", lambda: engine.status_counts(day)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="Keep the seeded database.")
    args = parser.parse_args()
    console = Console()
    url = fresh_database(DATABASE)
    try:
        started = time.perf_counter()
        seed(url, args.runs)
        console.print(f"seeded {args.runs:,} runs in {time.perf_counter() - started:.1f} s")
        engine = Engine(Settings(database_url=url))
        table = Table("query", "median ms", title=f"runs list at {args.runs:,} runs")
        for name, call in measurements(engine, args.runs):
            table.add_row(name, f"{median_ms(call, args.repeat):.1f}")
        console.print(table)
        engine.close()
    finally:
        if not args.keep:
            drop_database(DATABASE)


if __name__ == "__main__":
    main()
