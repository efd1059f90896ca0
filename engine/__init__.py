"""statewright: durable workflow state machines on Celery and SQLAlchemy.

Names are imported when first used, so a process that needs only part of the engine
(``statewright --help``, say) does not pay for Celery, SQLAlchemy and the rest.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# eager and cheap (Alembic loads when a migration runs): a lazy name would be shadowed
# by the ``statewright.migrate`` submodule once anything imports it
from statewright.migrate import upgrade as migrate

if TYPE_CHECKING:
    from statewright.api import Engine, metrics_from_settings
    from statewright.clock import Clock, SystemClock, VirtualClock
    from statewright.config import Settings
    from statewright.context import StepContext
    from statewright.definition import Definition, Workflow, step
    from statewright.dispatch import Dispatcher
    from statewright.embedded import EmbeddedWorker
    from statewright.errors import (
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
        UnknownWorkflowError,
    )
    from statewright.instrumentation import InstrumentedTask, bind_step, instrumented_task
    from statewright.metrics import (
        InMemoryMetrics,
        Metrics,
        NullMetrics,
        PrometheusMetrics,
        StatsdMetrics,
    )
    from statewright.outcomes import Poll
    from statewright.queries import RunFilter, RunInfo, RunPage, TransitionInfo
    from statewright.retention import PurgeResult
    from statewright.retry import RetryPolicy
    from statewright.schedule import Schedule
    from statewright.scheduler import ScheduleInfo
    from statewright.silo import SiloMode
    from statewright.timers import SignalContext
    from statewright.waits import Wait, on_signal

#: Public name -> (module, name in that module).
_LAZY: dict[str, tuple[str, str]] = {
    "Clock": ("statewright.clock", "Clock"),
    "ConfigurationError": ("statewright.errors", "ConfigurationError"),
    "Definition": ("statewright.definition", "Definition"),
    "DefinitionError": ("statewright.errors", "DefinitionError"),
    "Dispatcher": ("statewright.dispatch", "Dispatcher"),
    "EmbeddedWorker": ("statewright.embedded", "EmbeddedWorker"),
    "Engine": ("statewright.api", "Engine"),
    "IdempotencyConflictError": ("statewright.errors", "IdempotencyConflictError"),
    "IllegalOperationError": ("statewright.errors", "IllegalOperationError"),
    "InMemoryMetrics": ("statewright.metrics", "InMemoryMetrics"),
    "InstrumentedTask": ("statewright.instrumentation", "InstrumentedTask"),
    "InvalidParamsError": ("statewright.errors", "InvalidParamsError"),
    "Metrics": ("statewright.metrics", "Metrics"),
    "NullMetrics": ("statewright.metrics", "NullMetrics"),
    "PermanentError": ("statewright.errors", "PermanentError"),
    "Poll": ("statewright.outcomes", "Poll"),
    "PrometheusMetrics": ("statewright.metrics", "PrometheusMetrics"),
    "PurgeResult": ("statewright.retention", "PurgeResult"),
    "RetryPolicy": ("statewright.retry", "RetryPolicy"),
    "RunFilter": ("statewright.queries", "RunFilter"),
    "RunInfo": ("statewright.queries", "RunInfo"),
    "RunNotFoundError": ("statewright.errors", "RunNotFoundError"),
    "RunPage": ("statewright.queries", "RunPage"),
    "Schedule": ("statewright.schedule", "Schedule"),
    "ScheduleError": ("statewright.errors", "ScheduleError"),
    "ScheduleInfo": ("statewright.scheduler", "ScheduleInfo"),
    "Settings": ("statewright.config", "Settings"),
    "SignalContext": ("statewright.timers", "SignalContext"),
    "SignalTooLateError": ("statewright.errors", "SignalTooLateError"),
    "SiloLimitError": ("statewright.errors", "SiloLimitError"),
    "SiloMode": ("statewright.silo", "SiloMode"),
    "StatewrightError": ("statewright.errors", "StatewrightError"),
    "StatsdMetrics": ("statewright.metrics", "StatsdMetrics"),
    "StepContext": ("statewright.context", "StepContext"),
    "SystemClock": ("statewright.clock", "SystemClock"),
    "TransitionInfo": ("statewright.queries", "TransitionInfo"),
    "UnknownWorkflowError": ("statewright.errors", "UnknownWorkflowError"),
    "VirtualClock": ("statewright.clock", "VirtualClock"),
    "Wait": ("statewright.waits", "Wait"),
    "Workflow": ("statewright.definition", "Workflow"),
    "bind_step": ("statewright.instrumentation", "bind_step"),
    "instrumented_task": ("statewright.instrumentation", "instrumented_task"),
    "metrics_from_settings": ("statewright.api", "metrics_from_settings"),
    "on_signal": ("statewright.waits", "on_signal"),
    "step": ("statewright.definition", "step"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'statewright' has no attribute {name!r}") from None
    value = getattr(import_module(module), attribute)
    globals()[name] = value
    return value


__all__ = [
    "Clock",
    "ConfigurationError",
    "Definition",
    "DefinitionError",
    "Dispatcher",
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
    "TransitionInfo",
    "UnknownWorkflowError",
    "VirtualClock",
    "Wait",
    "Workflow",
    "bind_step",
    "instrumented_task",
    "metrics_from_settings",
    "migrate",
    "on_signal",
    "step",
]
