"""statewright's benchmarks, side by side with their baselines: ``make bench``.

    python -m bench [--quick] [--only steps,scale,memory,import,embedded] [--runs 300]

Every comparison runs in this one process tree, one after another, on the same
PostgreSQL and Redis, so the ratios compare like with like on a shared machine.
Prints a table per benchmark and the targets, and writes everything to
``bench/results/<timestamp>.json``. Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.cluster import drop_database, fresh_database
from bench.steps import Bench, StepFigures, prepare_database, run_steps, seed_finished_runs
from tests.integration.processes import BIN, ROOT

SECTIONS = ("steps", "scale", "memory", "import", "embedded")
console = Console()


def steps_section(workdir: Path, runs: int, rounds: int) -> dict[str, Any]:
    """Each system ``rounds`` times, interleaved, so a noisy minute hurts all of them;
    the round with the median steps/s stands for the system."""
    url = fresh_database()
    prepare_database(url)
    measured: dict[str, list[StepFigures]] = {
        "celery": [],
        "dbos": [],
        "statewright": [],
        "statewright-msg": [],
    }
    for round_ in range(1, rounds + 1):
        for system, figures_of in measured.items():
            console.print(f"[bold]steps[/]: {system}, {runs} runs x 10 steps, round {round_}")
            figures_of.append(run_steps(system, url, workdir, runs))
    figures = {
        system: sorted(all_rounds, key=lambda f: f.steps_per_second)[len(all_rounds) // 2]
        for system, all_rounds in measured.items()
    }
    table = Table(
        title=f"Steps: {runs} concurrent runs x 10 steps, 2 executors (median of {rounds} rounds)",
        caption="statewright: as configured by default (a delivery continues its run in "
        "process for up to 1 s); statewright-msg: STATEWRIGHT_CONTINUE_FOR=0, a message per step",
    )
    for column in ("system", "steps/s", "p50 ms", "p99 ms", "round trips/step", "commits/step"):
        table.add_column(column, justify="right")
    for system, f in figures.items():
        table.add_row(
            system,
            f"{f.steps_per_second:.0f}",
            f"{f.latency_p50_ms:.1f}",
            f"{f.latency_p99_ms:.1f}",
            f"{f.round_trips_per_step:.2f}",
            f"{f.transactions_per_step:.2f}",
        )
    console.print(table)
    sw = figures["statewright"].steps_per_second
    per_message = figures["statewright-msg"].steps_per_second
    return {
        "rounds": {k: [f.steps_per_second for f in v] for k, v in measured.items()},
        "figures": {k: v.as_dict() for k, v in figures.items()},
        "ratio_vs_celery": round(sw / figures["celery"].steps_per_second, 3),
        "ratio_vs_dbos": round(sw / figures["dbos"].steps_per_second, 3),
        "message_per_step_ratio_vs_celery": round(
            per_message / figures["celery"].steps_per_second, 3
        ),
        "message_per_step_ratio_vs_dbos": round(per_message / figures["dbos"].steps_per_second, 3),
        "engine_round_trips_per_step": round(
            figures["statewright"].round_trips_per_step - figures["celery"].round_trips_per_step,
            2,
        ),
    }


def scale_section(workdir: Path, runs: int, large: int) -> dict[str, Any]:
    url = fresh_database()
    prepare_database(url)
    results: dict[str, Any] = {}
    for stored in (1_000, large):
        console.print(f"[bold]scale[/]: seeding {stored:,} finished runs ...")
        started = time.perf_counter()
        seed_finished_runs(url, stored)
        console.print(f"  seeded in {time.perf_counter() - started:.0f} s; measuring ...")
        rounds = sorted(
            (run_steps("statewright", url, workdir, runs) for _ in range(3)),
            key=lambda f: f.steps_per_second,
        )
        figures = rounds[1]  # the median of three
        results[str(stored)] = figures.as_dict() | {
            "ms_per_step": round(1000 / figures.steps_per_second, 3),
            "rounds": [f.steps_per_second for f in rounds],
        }
    small, big = results["1000"], results[str(large)]
    table = Table(title="Scale: per-step cost with finished runs in the tables (median of 3)")
    for column in ("finished runs", "steps/s", "ms/step", "round trips/step"):
        table.add_column(column, justify="right")
    for stored_runs, row in results.items():
        table.add_row(
            f"{int(stored_runs):,}",
            f"{row['steps_per_second']:.0f}",
            f"{row['ms_per_step']:.2f}",
            f"{row['round_trips_per_step']:.2f}",
        )
    console.print(table)
    drop_database()
    return {
        "large": large,
        "figures": results,
        "cost_ratio": round(big["ms_per_step"] / small["ms_per_step"], 3),
    }


def memory_section(workdir: Path, runs: int) -> dict[str, Any]:
    url = fresh_database()
    prepare_database(url)
    bench = Bench("statewright", url, workdir)
    try:
        bench.start()
        at_ready = bench.worker_rss()
        bench.measure(300, "memory-warm")
        warm = bench.worker_rss()
        steps = runs * 10
        console.print(f"[bold]memory[/]: {steps:,} steps on one worker, 300 runs at a time ...")
        started = time.perf_counter()
        # waves of 300 runs: the load of the steps benchmark, not a backlog of thousands
        # of messages waiting longer than the dispatch timeout
        for wave in range(0, runs, 300):
            keys = [f"memory{wave}-{i}" for i in range(wave, min(wave + 300, runs))]
            bench.launch(keys)
            bench.wait(keys)
        seconds = time.perf_counter() - started
        end = bench.worker_rss()
    finally:
        bench.stop()
    growth = max(e - w for e, w in zip(end, warm, strict=True))
    table = Table(title=f"Memory: worker pool processes over {steps:,} steps")
    for column in ("process", "at ready MB", "after warm-up MB", "at end MB", "growth MB"):
        table.add_column(column, justify="right")
    for index, (r, w, e) in enumerate(zip(at_ready, warm, end, strict=True)):
        table.add_row(str(index + 1), _mb(r), _mb(w), _mb(e), _mb(e - w))
    console.print(table)
    return {
        "steps": steps,
        "seconds": round(seconds, 1),
        "steps_per_second": round(steps / seconds, 1),
        "rss_at_ready": at_ready,
        "rss_after_warmup": warm,
        "rss_at_end": end,
        "max_growth_bytes": growth,
    }


def import_section(workdir: Path, users: int) -> dict[str, Any]:
    from statewright.migrate import upgrade
    from statewright.workflows.relocation.exporter import export_organizations
    from statewright.workflows.relocation.sample import SampleShape, build_sample

    source = f"sqlite:///{workdir / 'source.db'}"
    upgrade(source)
    shape = SampleShape(
        orgs=20,
        users=users,
        orgs_per_user=1,
        teams_per_org=max(users // 200, 1),
        projects_per_org=max(users // 80, 1),
        teams_per_project=1,
    )
    console.print(f"[bold]import[/]: building a {users:,}-user installation and its export ...")
    slugs = build_sample(source, shape)
    export = workdir / "export.json.gz"
    with export.open("wb") as target:
        counts = export_organizations(source, slugs, target)
    results: dict[str, Any] = {"export_rows": sum(counts.values()), "sections": counts}
    for mode in ("bulk", "import"):
        name = f"statewright_bench_{mode}"
        url = fresh_database(name)
        upgrade(url)
        output = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.import_rows",
                "--mode",
                mode,
                "--export",
                str(export),
                "--database",
                url,
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[mode] = json.loads(output.strip().splitlines()[-1])
        drop_database(name)
    results["ratio"] = round(
        results["import"]["rows_per_second"] / results["bulk"]["rows_per_second"], 3
    )
    table = Table(title=f"Import: {results['export_rows']:,} rows, one transaction")
    for column in ("method", "rows", "seconds", "rows/s", "RSS before MB", "peak RSS MB"):
        table.add_column(column, justify="right")
    for mode, label in (("bulk", "plain bulk insert"), ("import", "relocation import")):
        r = results[mode]
        table.add_row(
            label,
            f"{r['rows']:,}",
            f"{r['seconds']:.2f}",
            f"{r['rows_per_second']:,}",
            _mb(r["rss_before_bytes"]),
            _mb(r["peak_rss_bytes"]),
        )
    console.print(table)
    return results


def embedded_section(workdir: Path) -> dict[str, Any]:
    console.print(
        "[bold]embedded[/]: the demo's relocation on SQLite and the in-process worker ..."
    )
    cwd = workdir / "demo"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEWRIGHT_")}
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "statewright"), "demo"], cwd=cwd, env=env, check=True, capture_output=True
    )
    seconds = time.perf_counter() - started
    table = Table(title="Embedded: the demo's relocation")
    table.add_column("run", justify="left")
    table.add_column("wall time s", justify="right")
    table.add_row("statewright demo (3 organizations, 300 users)", f"{seconds:.1f}")
    console.print(table)
    return {"wall_seconds": round(seconds, 2)}


def targets_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(name: str, measured: float, target: str, met: bool) -> None:
        rows.append({"target": name, "measured": measured, "goal": target, "met": met})

    if "steps" in results:
        steps = results["steps"]
        add(
            "steps/s vs raw Celery",
            steps["ratio_vs_celery"],
            "≥ 0.8x",
            steps["ratio_vs_celery"] >= 0.8,
        )
        add("steps/s vs DBOS", steps["ratio_vs_dbos"], "≥ 1.4x", steps["ratio_vs_dbos"] >= 1.4)
        if "message_per_step_ratio_vs_celery" in steps:
            # not the target's configuration: the figures without continuing in process
            for name, key, goal in (
                ("raw Celery", "message_per_step_ratio_vs_celery", 0.8),
                ("DBOS", "message_per_step_ratio_vs_dbos", 1.4),
            ):
                ratio = steps[key]
                add(f"  (a message per step) vs {name}", ratio, f"≥ {goal}x", ratio >= goal)
        trips = steps["engine_round_trips_per_step"]
        add("round trips the engine adds per step", trips, "≤ 3", trips <= 3)
    if "scale" in results:
        ratio = results["scale"]["cost_ratio"]
        large = results["scale"]["large"]
        add(f"per-step cost, {large:,} vs 1,000 stored runs", ratio, "≤ 1.10x", ratio <= 1.10)
    if "memory" in results:
        growth = results["memory"]["max_growth_bytes"] / 1e6
        add(
            f"RSS growth over {results['memory']['steps']:,} steps (MB)",
            round(growth, 2),
            "< 5",
            growth < 5,
        )
    if "import" in results:
        ratio = results["import"]["ratio"]
        add("import vs plain bulk insert", ratio, "≥ 0.5x", ratio >= 0.5)
    table = Table(title="Targets (reported, never asserted)")
    for column in ("target", "measured", "goal", "met"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["target"], str(row["measured"]), row["goal"], "yes" if row["met"] else "[red]no[/]"
        )
    console.print(table)
    return rows


def _mb(value: int) -> str:
    return f"{value / 1e6:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument(
        "--runs", type=int, default=300, help="concurrent runs in the steps benchmark"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the steps benchmark")
    args = parser.parse_args()
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; allowed: {', '.join(SECTIONS)}")
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "quick": args.quick,
    }
    with tempfile.TemporaryDirectory(prefix="statewright-bench-") as tmp:
        workdir = Path(tmp)
        try:
            if "steps" in sections:
                results["steps"] = steps_section(
                    workdir, args.runs, 1 if args.quick else args.rounds
                )
            if "scale" in sections:
                large = 100_000 if args.quick else 1_000_000
                results["scale"] = scale_section(workdir, args.runs, large)
            if "memory" in sections:
                results["memory"] = memory_section(workdir, 1_000 if args.quick else 10_000)
            if "import" in sections:
                results["import"] = import_section(workdir, 10_000 if args.quick else 40_000)
            if "embedded" in sections:
                results["embedded"] = embedded_section(workdir)
        finally:
            drop_database()
    results["targets"] = targets_table(results)
    out = ROOT / "bench" / "results" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"results written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
