"""Give each task its own Sentry scope, tagged so an error says where it happened.

Nothing here imports sentry-sdk: a process that never imported it cannot have
initialised it, so it has no client to tag or report to, and importing it would cost
every command and worker a tenth of a second for nothing. Whoever initialises it
(``setup_sentry``, or the application itself) has imported it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from statewright.hooks import TaskCall


def loaded_sentry_sdk() -> ModuleType | None:
    """The ``sentry_sdk`` module if this process has imported it, else ``None``."""
    return sys.modules.get("sentry_sdk")


@contextmanager
def sentry_scope(call: TaskCall) -> Iterator[None]:
    """Events captured inside the task carry its name and transaction id."""
    sdk = loaded_sentry_sdk()
    if sdk is None:
        yield
        return
    with sdk.isolation_scope() as scope:
        scope.set_tag("task_name", call.name)
        if call.task_id:
            scope.set_tag("transaction_id", call.task_id)
        yield


def tag_scope(**tags: Any) -> None:
    """Tag every event captured for the rest of the task."""
    sdk = loaded_sentry_sdk()
    if sdk is None:
        return
    scope = sdk.get_isolation_scope()
    for key, value in tags.items():
        scope.set_tag(key, value)


def report_failure(reason: str, error: BaseException | None = None) -> None:
    """Report a run's failure once (retries are not reported), with the readable reason."""
    sdk = loaded_sentry_sdk()
    if sdk is None:
        return
    scope = sdk.get_isolation_scope()
    scope.set_extra("failure_reason", reason)
    if error is not None:
        sdk.capture_exception(error)
    else:
        sdk.capture_message(reason, level="error")
