"""statewright: durable workflow state machines on Celery and SQLAlchemy."""

from engine.api import Engine, metrics_from_settings
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
from engine.instrumentation import InstrumentedTask, bind_step, instrumented_task
from engine.metrics import InMemoryMetrics, Metrics, NullMetrics, PrometheusMetrics, StatsdMetrics
from engine.migrate import upgrade as migrate
from engine.outcomes import Poll
from engine.queries import RunFilter, RunInfo, RunPage, TransitionInfo
from engine.retention import PurgeResult
from engine.retry import RetryPolicy
from engine.schedule import Schedule
from engine.scheduler import ScheduleInfo
from engine.silo import SiloMode
from engine.timers import SignalContext
from engine.waits import Wait, on_signal

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
