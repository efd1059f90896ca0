"""Validation in a sandbox: import the checked export into an empty, separate database."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from statewright.migrate import upgrade
from statewright.workflows.relocation.format import ExportError, Limits, read_records
from statewright.workflows.relocation.importer import Importer, ImportProblemError

Finding = dict[str, str]


def validate_in_sandbox(
    normalized: bytes, limits: Limits, *, now: datetime, batch: int
) -> list[Finding]:
    """Problems found by importing into a fresh database made by the migrations; ``[]`` if none."""
    with tempfile.TemporaryDirectory(prefix="statewright-sandbox-") as directory:
        url = f"sqlite:///{Path(directory) / 'sandbox.db'}"
        upgrade(url)
        engine = create_engine(url)
        try:
            with Session(engine) as session:
                try:
                    Importer(session, now=now, batch=batch).run(
                        read_records(normalized, None, limits)
                    )
                except ImportProblemError as problem:
                    return problem.findings
                except IntegrityError as error:
                    return [{"section": "database", "problem": _constraint(error)}]
                except ExportError as error:
                    return [{"section": "document", "problem": str(error)}]
                finally:
                    session.rollback()
        finally:
            engine.dispose()
    return []


def _constraint(error: IntegrityError) -> str:
    detail = str(error.orig).splitlines()[0] if error.orig is not None else str(error)
    return f"the records break a rule of the schema: {detail}"
