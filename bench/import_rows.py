"""Relocation import against a plain bulk insert of the same rows.

    python -m bench.import_rows --mode import|bulk --export FILE --database URL

Run once per mode, each in a process of its own so its peak RSS is its own. Prints
one JSON line: rows, seconds, rows per second, peak RSS in bytes.

- ``import``: what the relocation's importing step does: read the checked copy of
  the export as a stream (decompress, parse, validate), remap keys and insert in
  batches of 1,000, in one transaction.
- ``bulk``: the floor: the same rows, already parsed into memory before the clock
  starts, inserted with their own ids in batches of 1,000, in one transaction.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert
from sqlalchemy.orm import Session

from statewright.demo import TABLES
from statewright.workflows.relocation.format import Limits, read_records
from statewright.workflows.relocation.importer import Importer

BATCH = 1000


def run_import(data: bytes, url: str) -> int:
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            result = Importer(session, now=datetime.now(UTC), batch=BATCH).run(
                read_records(data, None, Limits().for_checked_copy())
            )
        return sum(result.rows.values())
    finally:
        engine.dispose()


def load_rows(data: bytes) -> dict[str, list[dict[str, Any]]]:
    """Every record of the export as the row it becomes (original ids kept)."""
    now = datetime.now(UTC)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    columns = {name: set(model.__table__.columns.keys()) for name, model in TABLES.items()}
    for section, record in read_records(data, None, Limits().for_checked_copy()):
        row = {k: v for k, v in record.items() if k in columns[section]}
        if "created_at" in columns[section]:
            row["created_at"] = now
        rows[section].append(row)
    return rows


def run_bulk(rows: dict[str, list[dict[str, Any]]], url: str) -> int:
    engine = create_engine(url)
    count = 0
    try:
        with engine.begin() as connection:
            for section, model in TABLES.items():
                batch = rows[section]
                for start in range(0, len(batch), BATCH):
                    connection.execute(insert(model), batch[start : start + BATCH])
                count += len(batch)
        return count
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["import", "bulk"], required=True)
    parser.add_argument("--export", type=Path, required=True)
    parser.add_argument("--database", required=True)
    args = parser.parse_args()
    data = args.export.read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if args.mode == "import":
        started = time.perf_counter()
        count = run_import(data, args.database)
    else:
        rows = load_rows(data)
        started = time.perf_counter()
        count = run_bulk(rows, args.database)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "mode": args.mode,
                "rows": count,
                "seconds": round(seconds, 3),
                "rows_per_second": round(count / seconds),
                "rss_before_bytes": before,
                "peak_rss_bytes": peak,
            }
        )
    )


if __name__ == "__main__":
    main()
