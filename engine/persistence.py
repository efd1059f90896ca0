"""Database access: one SQLAlchemy engine and session factory, row locks, run snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.orm import Session, sessionmaker

from statewright import pool_ping
from statewright.dbtime import read_database_now
from statewright.errors import RunNotFoundError
from statewright.models.engine import WorkflowRun
from statewright.step_session import StepSession
from statewright.stores import RunStore, run_store_for
from statewright.stores.statements import lock_run


class Database:
    """The engine's database: a connection pool and session factories.

    On SQLite every writing transaction is ``BEGIN IMMEDIATE``: the write lock is
    taken up front, which is SQLite's equivalent of ``SELECT ... FOR UPDATE``.
    ``reads`` sessions begin deferred and, with WAL, never wait for a writer.
    ``steps`` sessions (a handler's) take the write lock only at their first write:
    until then each read is its own statement, as PostgreSQL's READ COMMITTED sees
    it, so a handler that reads, computes or calls out holds no lock and blocks no
    operation; the completion's fenced move (or ``lock_run``) takes the lock.
    """

    def __init__(self, url: str, *, echo: bool = False, ping_after: float | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine: SAEngine = _create(
            url,
            echo=echo,
            ping_after=pool_ping.PING_IDLE_AFTER if ping_after is None else ping_after,
        )
        self.sessions: sessionmaker[Session] = sessionmaker(
            self.engine, expire_on_commit=False, autoflush=True
        )
        #: Sessions for handlers: commit, rollback and close refused while one runs;
        #: on SQLite, the write lock taken at the first write, not at the first read.
        self.steps: sessionmaker[StepSession] = sessionmaker(
            self.engine.execution_options(**{LAZY_WRITE_LOCK: True})
            if self.is_sqlite
            else self.engine,
            class_=StepSession,
            expire_on_commit=False,
            autoflush=True,
        )
        #: Sessions for reading only: on SQLite they never wait for the write lock.
        self.reads: sessionmaker[Session] = (
            sessionmaker(_create(url, echo=echo, immediate=False), expire_on_commit=False)
            if self.is_sqlite
            else self.sessions
        )
        #: The run table's statements as this database runs them.
        self.runs: RunStore = run_store_for(self)

    def now(self) -> datetime:
        """The database's clock (a query of its own, on a reading connection)."""
        bind: SAEngine = self.reads.kw["bind"]
        with bind.connect() as connection:
            return read_database_now(connection)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        bind = self.reads.kw.get("bind")
        if bind is not None and bind is not self.engine:
            bind.dispose()


def _create(url: str, *, echo: bool, immediate: bool = True, ping_after: float = 0.0) -> SAEngine:
    if not url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, pool_size=10, max_overflow=20)
        pool_ping.ping_when_rested(engine, ping_after)
        return engine
    engine = create_engine(url, echo=echo, connect_args={"timeout": 60, "isolation_level": None})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(LAZY_WRITE_LOCK):
            return  # BEGIN IMMEDIATE comes with the first write (below)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @event.listens_for(engine, "before_cursor_execute")
    def _lock_before_first_write(
        connection: Any, cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if not connection.get_execution_options().get(LAZY_WRITE_LOCK):
            return
        if cursor.connection.in_transaction or not _writes(statement, context):
            return
        cursor.execute("BEGIN IMMEDIATE")

    return engine


#: Execution option of SQLite connections that take the write lock at the first write.
LAZY_WRITE_LOCK = "statewright_lazy_write_lock"


def _writes(statement: str, context: Any) -> bool:
    """Whether a statement needs the write lock: anything but a plain read; a
    ``SELECT ... FOR UPDATE`` (which SQLite does not spell) asks for it too."""
    compiled = getattr(context, "compiled", None)
    if getattr(getattr(compiled, "statement", None), "_for_update_arg", None) is not None:
        return True
    return statement.lstrip()[:6].upper() != "SELECT"


def require_run(session: Session, run_id: str) -> WorkflowRun:
    """The run row, locked; ``RunNotFoundError`` if there is none."""
    run = lock_run(session, run_id)
    if run is None:
        raise RunNotFoundError(run_id)
    return run


__all__ = ["LAZY_WRITE_LOCK", "Database", "lock_run", "require_run"]
