"""The public API is deliberate: `statewright.__all__` is pinned here."""

import statewright as engine

PUBLIC = {
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
}


def test_all_is_pinned() -> None:
    """Adding or removing a public name is a decision made in this test."""
    assert set(engine.__all__) == PUBLIC


def test_every_public_name_exists() -> None:
    """Every name in __all__ is importable from the package."""
    for name in engine.__all__:
        assert getattr(engine, name) is not None


def test_errors_share_one_root() -> None:
    """Every statewright error derives from StatewrightError."""
    for name in engine.__all__:
        value = getattr(engine, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, engine.StatewrightError), name


def test_lazy_names_match_all() -> None:
    """Every lazily imported name is public and every public name but migrate is lazy."""
    assert set(engine._LAZY) == set(engine.__all__) - {"migrate"}


def test_internals_are_not_exported() -> None:
    """Engine internals stay in their modules, not in the package namespace."""
    for name in ("Dispatcher", "bind_step", "metrics_from_settings"):
        assert name not in engine.__all__
        assert not hasattr(engine, name), name
