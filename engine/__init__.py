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
    from statewright.activation import Activation, on_activate
    from statewright.api import Engine
    from statewright.children import ChildInfo
    from statewright.clock import Clock, SystemClock, VirtualClock
    from statewright.config import Settings
    from statewright.context import StepContext, TaskContext
    from statewright.definition import Definition, TaskGroup, Workflow, step, task
    from statewright.dispatch import TaskMessage
    from statewright.embedded import EmbeddedWorker
    from statewright.errors import (
        ConfigurationError,
        DefinitionError,
        IdempotencyConflictError,
        IllegalOperationError,
        InvalidParamsError,
        LifecycleHookError,
        PermanentError,
        RunNotFoundError,
        ScheduleError,
        SignalTooLateError,
        SiloLimitError,
        StatewrightError,
        UnknownTaskError,
        UnknownWorkflowError,
    )
    from statewright.fanout import FailedItem, ItemContext, MapInfo, PageContext
    from statewright.instrumentation import InstrumentedTask, instrumented_task
    from statewright.joins import Map
    from statewright.metrics import (
        InMemoryMetrics,
        Metrics,
        NullMetrics,
        PrometheusMetrics,
        StatsdMetrics,
    )
    from statewright.migrate import Migrations
    from statewright.outcomes import Poll
    from statewright.queries import RunFilter, RunInfo, RunPage, TransitionInfo
    from statewright.retention import PurgeResult
    from statewright.retry import RetryPolicy
    from statewright.run_end import RunEnd, on_end
    from statewright.schedule import Schedule
    from statewright.scheduler import ScheduleInfo
    from statewright.silo import SiloMode
    from statewright.timers import SignalContext
    from statewright.waits import Wait, on_signal

#: Public name -> (module, name in that module).
_LAZY: dict[str, tuple[str, str]] = {
    "Activation": ("statewright.activation", "Activation"),
    "ChildInfo": ("statewright.children", "ChildInfo"),
    "Clock": ("statewright.clock", "Clock"),
    "ConfigurationError": ("statewright.errors", "ConfigurationError"),
    "Definition": ("statewright.definition", "Definition"),
    "DefinitionError": ("statewright.errors", "DefinitionError"),
    "EmbeddedWorker": ("statewright.embedded", "EmbeddedWorker"),
    "Engine": ("statewright.api", "Engine"),
    "FailedItem": ("statewright.fanout", "FailedItem"),
    "IdempotencyConflictError": ("statewright.errors", "IdempotencyConflictError"),
    "IllegalOperationError": ("statewright.errors", "IllegalOperationError"),
    "InMemoryMetrics": ("statewright.metrics", "InMemoryMetrics"),
    "InstrumentedTask": ("statewright.instrumentation", "InstrumentedTask"),
    "InvalidParamsError": ("statewright.errors", "InvalidParamsError"),
    "ItemContext": ("statewright.fanout", "ItemContext"),
    "LifecycleHookError": ("statewright.errors", "LifecycleHookError"),
    "Map": ("statewright.joins", "Map"),
    "MapInfo": ("statewright.fanout", "MapInfo"),
    "Metrics": ("statewright.metrics", "Metrics"),
    "Migrations": ("statewright.migrate", "Migrations"),
    "NullMetrics": ("statewright.metrics", "NullMetrics"),
    "PageContext": ("statewright.fanout", "PageContext"),
    "PermanentError": ("statewright.errors", "PermanentError"),
    "Poll": ("statewright.outcomes", "Poll"),
    "PrometheusMetrics": ("statewright.metrics", "PrometheusMetrics"),
    "PurgeResult": ("statewright.retention", "PurgeResult"),
    "RetryPolicy": ("statewright.retry", "RetryPolicy"),
    "RunEnd": ("statewright.run_end", "RunEnd"),
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
    "TaskContext": ("statewright.context", "TaskContext"),
    "TaskGroup": ("statewright.definition", "TaskGroup"),
    "TaskMessage": ("statewright.dispatch", "TaskMessage"),
    "TransitionInfo": ("statewright.queries", "TransitionInfo"),
    "UnknownTaskError": ("statewright.errors", "UnknownTaskError"),
    "UnknownWorkflowError": ("statewright.errors", "UnknownWorkflowError"),
    "VirtualClock": ("statewright.clock", "VirtualClock"),
    "Wait": ("statewright.waits", "Wait"),
    "Workflow": ("statewright.definition", "Workflow"),
    "instrumented_task": ("statewright.instrumentation", "instrumented_task"),
    "on_activate": ("statewright.activation", "on_activate"),
    "on_end": ("statewright.run_end", "on_end"),
    "on_signal": ("statewright.waits", "on_signal"),
    "step": ("statewright.definition", "step"),
    "task": ("statewright.definition", "task"),
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
    "Activation",
    "ChildInfo",
    "Clock",
    "ConfigurationError",
    "Definition",
    "DefinitionError",
    "EmbeddedWorker",
    "Engine",
    "FailedItem",
    "IdempotencyConflictError",
    "IllegalOperationError",
    "InMemoryMetrics",
    "InstrumentedTask",
    "InvalidParamsError",
    "ItemContext",
    "LifecycleHookError",
    "Map",
    "MapInfo",
    "Metrics",
    "Migrations",
    "NullMetrics",
    "PageContext",
    "PermanentError",
    "Poll",
    "PrometheusMetrics",
    "PurgeResult",
    "RetryPolicy",
    "RunEnd",
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
    "on_activate",
    "on_end",
    "on_signal",
    "step",
    "task",
]
