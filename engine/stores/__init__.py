"""A run store per database: the run table's statements behind one interface.

Claiming a step, moving a claimed run, locking a run, listing running runs (expired
leases, runs to recover) and finding due outbox rows are written once per database:
``SqliteRunStore`` (a write transaction is the lock) and ``PostgresRunStore`` (row
locks, ``SKIP LOCKED``, data-modifying CTEs). ``Database`` chooses one when it is
made (``db.runs``); nothing else asks which database it talks to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from statewright.stores.base import Moved, RunStore, StepConnection
from statewright.stores.postgresql import PostgresRunStore
from statewright.stores.sqlite import SqliteRunStore

if TYPE_CHECKING:
    from statewright.persistence import Database


def run_store_for(db: Database) -> RunStore:
    """The run store of ``db``'s database."""
    return SqliteRunStore(db) if db.is_sqlite else PostgresRunStore(db)


__all__ = [
    "Moved",
    "PostgresRunStore",
    "RunStore",
    "SqliteRunStore",
    "StepConnection",
    "run_store_for",
]
