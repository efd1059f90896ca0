"""Databases, broker and process memory for the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

from kombu import Connection
from sqlalchemy import create_engine, text

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


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` now (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
