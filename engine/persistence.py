"""Database access: one SQLAlchemy engine and session factory, row locks, run snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import RunNotFoundError
from engine.jsonvalues import is_run_id
from models.engine import WorkflowRun


class Database:
    """The engine's database: a connection pool and a session factory.

    On SQLite every writing transaction is ``BEGIN IMMEDIATE``: the write lock is
    taken up front, which is SQLite's equivalent of ``SELECT ... FOR UPDATE``.
    ``reads`` sessions begin deferred and, with WAL, never wait for a writer.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine: SAEngine = _create(url, echo=echo)
        self.sessions: sessionmaker[Session] = sessionmaker(
            self.engine, expire_on_commit=False, autoflush=True
        )
        #: Sessions for reading only: on SQLite they never wait for the write lock.
        self.reads: sessionmaker[Session] = (
            sessionmaker(_create(url, echo=echo, immediate=False), expire_on_commit=False)
            if self.is_sqlite
            else self.sessions
        )

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


def _create(url: str, *, echo: bool, immediate: bool = True) -> SAEngine:
    if not url.startswith("sqlite"):
        return create_engine(
            url,
            echo=echo,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
        )
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
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def lock_run(session: Session, run_id: str) -> WorkflowRun | None:
    """The run row, locked until the transaction ends (``None`` if there is no such run)."""
    if not is_run_id(run_id):
        return None
    statement = select(WorkflowRun).where(WorkflowRun.id == run_id).with_for_update()
    # the locked row's values win over anything this session loaded earlier
    statement = statement.execution_options(populate_existing=True)
    return session.execute(statement).scalar_one_or_none()


def require_run(session: Session, run_id: str) -> WorkflowRun:
    """The run row, locked; ``RunNotFoundError`` if there is none."""
    run = lock_run(session, run_id)
    if run is None:
        raise RunNotFoundError(run_id)
    return run
