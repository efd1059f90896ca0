"""Operations from the console's forms, performed by the engine's own operation functions.

The console adds nothing to an operation but reading its form: validation and every
refusal message are the engine's, word for word.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from statewright.api import Engine
from statewright.errors import InvalidParamsError
from statewright.queries import RunInfo

log = structlog.get_logger("statewright.console")

#: Operations that cannot be undone, so the page asks before doing them.
IRREVERSIBLE = frozenset({"cancel", "abort"})


@dataclass(frozen=True, slots=True)
class OperationRequest:
    """One operation asked for from a form."""

    run_id: str
    name: str
    fields: dict[str, str]
    operator: str


def _pause(engine: Engine, wanted: OperationRequest) -> RunInfo:
    at = wanted.fields.get("at", "").strip() or None
    return engine.pause(wanted.run_id, at=at)


def _abort(engine: Engine, wanted: OperationRequest) -> RunInfo:
    reason = wanted.fields.get("reason", "").strip()
    return engine.abort(wanted.run_id, reason=reason) if reason else engine.abort(wanted.run_id)


def _signal(engine: Engine, wanted: OperationRequest) -> RunInfo:
    name = wanted.fields.get("name", "").strip()
    if not name:
        raise InvalidParamsError("name the signal to send (a trigger declared from the state)")
    return engine.signal(wanted.run_id, name, parse_data(wanted.fields.get("data", "")))


def parse_data(text: str) -> Any:
    """The signal's JSON data (empty means none); the engine checks it is an object."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidParamsError(f"signal data is not valid JSON: {error}") from None


OPERATIONS: dict[str, Callable[[Engine, OperationRequest], RunInfo]] = {
    "pause": _pause,
    "resume": lambda engine, wanted: engine.resume(wanted.run_id),
    "cancel": lambda engine, wanted: engine.cancel(wanted.run_id),
    "abort": _abort,
    "redrive": lambda engine, wanted: engine.redrive(wanted.run_id),
    "signal": _signal,
}


def perform(engine: Engine, wanted: OperationRequest) -> RunInfo:
    """Do the operation; the engine's ``StatewrightError`` says why it refuses."""
    operation = OPERATIONS.get(wanted.name)
    if operation is None:
        raise InvalidParamsError(
            f"unknown operation {wanted.name!r}; allowed: {', '.join(OPERATIONS)}"
        )
    info = operation(engine, wanted)
    log.info("operation", operation=wanted.name, run=wanted.run_id, operator=wanted.operator)
    return info
