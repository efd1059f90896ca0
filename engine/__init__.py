"""statewright: durable workflow state machines on Celery and SQLAlchemy.

Names are imported when first used, so a process that needs only part of the engine
(``statewright --help``, say) does not pay for Celery, SQLAlchemy and the rest.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# eager and cheap (Alembic loads when a migration runs): a lazy name would be shadowed
# by the ``engine.migrate`` submodule once anything imports it
from engine.migrate import upgrade as migrate

if TYPE_CHECKING:
    from engine.api import Engine
    from engine.clock import Clock, SystemClock, VirtualClock
    from engine.config import Settings
    from engine.context import StepContext, TaskContext
    from engine.definition import Definition, TaskGroup, Workflow, step, task
    from engine.dispatch import TaskMessage
    from engine.embedded import EmbeddedWorker
    from engine.errors import (
        ConfigurationError,
        DefinitionError,
        IdempotencyConflictError,
        IllegalOperationError,
        InvalidParamsError,
        PermanentError,
        RunNotFoundError,
        ScheduleError,
        SignalTooLateError,
        SiloLimitError,
        StatewrightError,
        UnknownTaskError,
        UnknownWorkflowError,
    )
    from engine.instrumentation import InstrumentedTask, instrumented_task
    from engine.metrics import (
        InMemoryMetrics,
        Metrics,
        NullMetrics,
        PrometheusMetrics,
        StatsdMetrics,
    )
    from engine.outcomes import Poll
    from engine.queries import RunFilter, RunInfo, RunPage, TransitionInfo
    from engine.retention import PurgeResult
    from engine.retry import RetryPolicy
    from engine.schedule import Schedule
    from engine.scheduler import ScheduleInfo
    from engine.silo import SiloMode
    from engine.timers import SignalContext
    from engine.waits import Wait, on_signal

#: Public name -> (module, name in that module).
_LAZY: dict[str, tuple[str, str]] = {
    "Clock": ("engine.clock", "Clock"),
    "ConfigurationError": ("engine.errors", "ConfigurationError"),
    "Definition": ("engine.definition", "Definition"),
    "DefinitionError": ("engine.errors", "DefinitionError"),
    "EmbeddedWorker": ("engine.embedded", "EmbeddedWorker"),
    "Engine": ("engine.api", "Engine"),
    "IdempotencyConflictError": ("engine.errors", "IdempotencyConflictError"),
    "IllegalOperationError": ("engine.errors", "IllegalOperationError"),
    "InMemoryMetrics": ("engine.metrics", "InMemoryMetrics"),
    "InstrumentedTask": ("engine.instrumentation", "InstrumentedTask"),
    "InvalidParamsError": ("engine.errors", "InvalidParamsError"),
    "Metrics": ("engine.metrics", "Metrics"),
    "NullMetrics": ("engine.metrics", "NullMetrics"),
    "PermanentError": ("engine.errors", "PermanentError"),
    "Poll": ("engine.outcomes", "Poll"),
    "PrometheusMetrics": ("engine.metrics", "PrometheusMetrics"),
    "PurgeResult": ("engine.retention", "PurgeResult"),
    "RetryPolicy": ("engine.retry", "RetryPolicy"),
    "RunFilter": ("engine.queries", "RunFilter"),
    "RunInfo": ("engine.queries", "RunInfo"),
    "RunNotFoundError": ("engine.errors", "RunNotFoundError"),
    "RunPage": ("engine.queries", "RunPage"),
    "Schedule": ("engine.schedule", "Schedule"),
    "ScheduleError": ("engine.errors", "ScheduleError"),
    "ScheduleInfo": ("engine.scheduler", "ScheduleInfo"),
    "Settings": ("engine.config", "Settings"),
    "SignalContext": ("engine.timers", "SignalContext"),
    "SignalTooLateError": ("engine.errors", "SignalTooLateError"),
    "SiloLimitError": ("engine.errors", "SiloLimitError"),
    "SiloMode": ("engine.silo", "SiloMode"),
    "StatewrightError": ("engine.errors", "StatewrightError"),
    "StatsdMetrics": ("engine.metrics", "StatsdMetrics"),
    "StepContext": ("engine.context", "StepContext"),
    "SystemClock": ("engine.clock", "SystemClock"),
    "TaskContext": ("engine.context", "TaskContext"),
    "TaskGroup": ("engine.definition", "TaskGroup"),
    "TaskMessage": ("engine.dispatch", "TaskMessage"),
    "TransitionInfo": ("engine.queries", "TransitionInfo"),
    "UnknownTaskError": ("engine.errors", "UnknownTaskError"),
    "UnknownWorkflowError": ("engine.errors", "UnknownWorkflowError"),
    "VirtualClock": ("engine.clock", "VirtualClock"),
    "Wait": ("engine.waits", "Wait"),
    "Workflow": ("engine.definition", "Workflow"),
    "instrumented_task": ("engine.instrumentation", "instrumented_task"),
    "on_signal": ("engine.waits", "on_signal"),
    "step": ("engine.definition", "step"),
    "task": ("engine.definition", "task"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'engine' has no attribute {name!r}") from None
    value = getattr(import_module(module), attribute)
    globals()[name] = value
    return value


__all__ = [
    "Clock",
    "ConfigurationError",
    "Definition",
    "DefinitionError",
    "EmbeddedWorker",
    "Engine",
    "IdempotencyConflictError",
    "IllegalOperationError",
    "InMemoryMetrics",
    "InstrumentedTask",
    "InvalidParamsError",
    "Metrics",
    "NullMetrics",
    "PermanentError",
    "Poll",
    "PrometheusMetrics",
    "PurgeResult",
    "RetryPolicy",
    "RunFilter",
    "RunInfo",
    "RunNotFoundError",
    "RunPage",
    "Schedule",
    "ScheduleError",
    "ScheduleInfo",
    "Settings",
    "SignalContext",
    "SignalTooLateError",
    "SiloLimitError",
    "SiloMode",
    "StatewrightError",
    "StatsdMetrics",
    "StepContext",
    "SystemClock",
    "TaskContext",
    "TaskGroup",
    "TaskMessage",
    "TransitionInfo",
    "UnknownTaskError",
    "UnknownWorkflowError",
    "VirtualClock",
    "Wait",
    "Workflow",
    "instrumented_task",
    "migrate",
    "on_signal",
    "step",
    "task",
]
