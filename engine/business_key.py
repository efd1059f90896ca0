"""Business keys: what a run is about (a loan number, an organization slug), so runs can
be found by it (``engine.list(key=...)``, ``statewright runs list --key``).

A workflow declares ``business_key``: the name of one of its params, or a function of
the params returning the key (or ``None`` for a run without one). The key is computed
once, when the run starts, and stored in an indexed column of the run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from statewright.errors import DefinitionError, InvalidParamsError
from statewright.jsonvalues import is_unicode

#: A declared business key: a param name, or a function of the params.
KeySource = str | Callable[[Mapping[str, Any]], object]
KeyFunction = Callable[[Mapping[str, Any]], object]

MAX_LENGTH = 200
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def key_function(workflow: str, declared: object) -> KeyFunction | None:
    """Check a workflow's ``business_key`` when it is declared; ``None`` if it has none."""
    if declared is None:
        return None
    if isinstance(declared, str):
        if not _PARAM.match(declared):
            raise DefinitionError(
                f"workflow {workflow!r}: business_key {declared!r} is not a param name; "
                "give a param name (letters, digits, _) or a function of the params"
            )
        return _param(workflow, declared)
    if callable(declared):
        return declared
    raise DefinitionError(
        f"workflow {workflow!r}: business_key must be a param name or a function of the "
        f"params; got {declared!r}"
    )


def compute_key(
    workflow: str, function: KeyFunction | None, params: Mapping[str, Any]
) -> str | None:
    """The run's key from its params, checked: text of 1 to 200 printable characters."""
    if function is None:
        return None
    value = function(params)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidParamsError(
            f"the business key of this {workflow!r} run is {value!r}; a key is a string or "
            "an integer"
        )
    key = str(value)
    if not key.strip() or len(key) > MAX_LENGTH or not key.isprintable() or not is_unicode(key):
        raise InvalidParamsError(
            f"the business key of this {workflow!r} run, {key!r}, is not allowed; a key is "
            f"1 to {MAX_LENGTH} printable characters"
        )
    return key


def _param(workflow: str, name: str) -> KeyFunction:
    def from_param(params: Mapping[str, Any]) -> object:
        if name not in params:
            raise InvalidParamsError(
                f"workflow {workflow!r} keys its runs by param {name!r}, and these params "
                f"have none; params given: {', '.join(sorted(params)) or '(none)'}"
            )
        return params[name]

    return from_param
