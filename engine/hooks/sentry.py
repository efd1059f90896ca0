"""Give each task its own Sentry scope, tagged so an error says where it happened."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sentry_sdk

from statewright.hooks import TaskCall


@contextmanager
def sentry_scope(call: TaskCall) -> Iterator[None]:
    """Events captured inside the task carry its name and transaction id."""
    with sentry_sdk.isolation_scope() as scope:
        scope.set_tag("task_name", call.name)
        if call.task_id:
            scope.set_tag("transaction_id", call.task_id)
        yield


def tag_scope(**tags: Any) -> None:
    """Tag every event captured for the rest of the task."""
    scope = sentry_sdk.get_isolation_scope()
    for key, value in tags.items():
        scope.set_tag(key, value)


def report_failure(reason: str, error: BaseException | None = None) -> None:
    """Report a run's failure once (retries are not reported), with the readable reason."""
    scope = sentry_sdk.get_isolation_scope()
    scope.set_extra("failure_reason", reason)
    if error is not None:
        sentry_sdk.capture_exception(error)
    else:
        sentry_sdk.capture_message(reason, level="error")
