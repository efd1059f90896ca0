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
    from engine.api import Engine, metrics_from_settings
    from engine.children import ChildInfo
    from engine.clock import Clock, SystemClock, VirtualClock
    from engine.config import Settings
    from engine.context import StepContext
    from engine.definition import Definition, Workflow, step
    from engine.dispatch import Dispatcher
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
        UnknownWorkflowError,
    )
    from engine.fanout import FailedItem, ItemContext, MapInfo, PageContext
    from engine.instrumentation import InstrumentedTask, bind_step, instrumented_task
    from engine.joins import Map
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
    "ChildInfo": ("engine.children", "ChildInfo"),
    "Clock": ("engine.clock", "Clock"),
    "ConfigurationError": ("engine.errors", "ConfigurationError"),
    "Definition": ("engine.definition", "Definition"),
    "DefinitionError": ("engine.errors", "DefinitionError"),
    "Dispatcher": ("engine.dispatch", "Dispatcher"),
    "EmbeddedWorker": ("engine.embedded", "EmbeddedWorker"),
    "Engine": ("engine.api", "Engine"),
    "FailedItem": ("engine.fanout", "FailedItem"),
    "IdempotencyConflictError": ("engine.errors", "IdempotencyConflictError"),
    "IllegalOperationError": ("engine.errors", "IllegalOperationError"),
    "InMemoryMetrics": ("engine.metrics", "InMemoryMetrics"),
    "InstrumentedTask": ("engine.instrumentation", "InstrumentedTask"),
    "InvalidParamsError": ("engine.errors", "InvalidParamsError"),
    "ItemContext": ("engine.fanout", "ItemContext"),
    "Map": ("engine.joins", "Map"),
    "MapInfo": ("engine.fanout", "MapInfo"),
    "Metrics": ("engine.metrics", "Metrics"),
    "NullMetrics": ("engine.metrics", "NullMetrics"),
    "PageContext": ("engine.fanout", "PageContext"),
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
    "TransitionInfo": ("engine.queries", "TransitionInfo"),
    "UnknownWorkflowError": ("engine.errors", "UnknownWorkflowError"),
    "VirtualClock": ("engine.clock", "VirtualClock"),
    "Wait": ("engine.waits", "Wait"),
    "Workflow": ("engine.definition", "Workflow"),
    "bind_step": ("engine.instrumentation", "bind_step"),
    "instrumented_task": ("engine.instrumentation", "instrumented_task"),
    "metrics_from_settings": ("engine.api", "metrics_from_settings"),
    "on_signal": ("engine.waits", "on_signal"),
    "step": ("engine.definition", "step"),
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
    "ChildInfo",
    "Clock",
    "ConfigurationError",
    "Definition",
    "DefinitionError",
    "Dispatcher",
    "EmbeddedWorker",
    "Engine",
    "FailedItem",
    "IdempotencyConflictError",
    "IllegalOperationError",
    "InMemoryMetrics",
    "InstrumentedTask",
    "InvalidParamsError",
    "ItemContext",
    "Map",
    "MapInfo",
    "Metrics",
    "NullMetrics",
    "PageContext",
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
