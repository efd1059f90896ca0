"""Instrumented tasks: attributes, metrics, silo limits, Sentry tags, log context, JSON only."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest
import sentry_sdk
import structlog
from celery.canvas import Signature
from kombu import Connection
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from structlog.testing import LogCapture

from statewright import (
    EmbeddedWorker,
    Engine,
    InMemoryMetrics,
    InstrumentedTask,
    Settings,
    SiloLimitError,
    SiloMode,
    StepContext,
    Workflow,
    bind_step,
    instrumented_task,
    step,
)
from statewright.celery_app import StatewrightCelery, build_celery
from statewright.dispatch import ENQUEUED_AT_HEADER
from statewright.testing import WorkflowHarness, captured_queue
from tests.conftest import EngineFactory
from tests.sample_workflows import FAST_RETRY, WORKFLOWS

Event = dict[str, Any]


def make_app(mode: SiloMode = SiloMode.MONOLITH) -> StatewrightCelery:
    return build_celery(Settings(silo_mode=mode), InMemoryMetrics())


def app_metrics(app: StatewrightCelery) -> InMemoryMetrics:
    assert isinstance(app.statewright_metrics, InMemoryMetrics)
    return app.statewright_metrics


# -- the task object ----------------------------------------------------------------


def test_task_keeps_its_attributes() -> None:
    """The decorated task is a Celery task with its name, doc, options and statewright defaults."""
    app = make_app(SiloMode.REGION)

    @instrumented_task(name="tests.add", app=app, silo_mode=SiloMode.REGION, queue="adding")
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    assert isinstance(add, InstrumentedTask)
    assert add.name == "tests.add"
    assert add.__doc__ == "Add two numbers."
    assert add.silo_mode == frozenset({SiloMode.REGION})
    assert add.acks_late is True
    assert add.ignore_result is True
    assert add.serializer == "json"
    assert add.reject_on_worker_lost is True
    assert add.task_queue == "adding"
    assert add.app is app
    assert app.tasks["tests.add"].name == "tests.add"
    assert add(2, 3) == 5


def test_task_defaults_without_options() -> None:
    """With no limit, queue or suffix, a task runs anywhere on the default queue."""
    app = make_app()

    @instrumented_task(name="tests.plain", app=app)
    def plain() -> str:
        return "ran"

    assert plain.silo_mode is None
    assert plain.task_queue is None
    assert plain.stat_suffix is None
    assert plain() == "ran"


def test_extra_celery_options_are_passed_through() -> None:
    """Celery options given to the decorator land on the task (and may override defaults)."""
    app = make_app()

    @instrumented_task(name="tests.limited", app=app, time_limit=30, max_retries=7)
    def limited() -> None:
        pass

    assert limited.time_limit == 30
    assert limited.max_retries == 7


def first_message(app: StatewrightCelery, queue: str) -> Any:
    """Take the first message waiting on ``queue`` of the app's (in-memory) broker."""
    with Connection(app.conf.broker_url) as connection:
        simple = connection.SimpleQueue(queue)
        try:
            message = simple.get(timeout=5)
            message.ack()
            return message
        finally:
            simple.close()


def test_apply_async_uses_the_task_queue_unless_told_otherwise() -> None:
    """A message goes to the task's queue as JSON; an explicit queue wins."""
    app = make_app()
    queue, other = f"tests-{uuid.uuid4().hex}", f"tests-{uuid.uuid4().hex}"

    @instrumented_task(name="tests.routed", app=app, queue=queue)
    def routed(x: int) -> int:
        return x

    routed.delay(1)
    message = first_message(app, queue)
    assert message.headers["task"] == "tests.routed"
    assert message.content_type == "application/json"
    assert message.payload[0] == [1]

    routed.apply_async((2,), queue=other)
    assert first_message(app, other).payload[0] == [2]


# -- metrics ------------------------------------------------------------------------

_kept: list[bytes] = []


def test_call_records_duration_in_milliseconds() -> None:
    """A direct call records task.duration in ms, tagged with the task and its status."""
    app = make_app()

    @instrumented_task(name="tests.sleepy", app=app)
    def sleepy() -> str:
        time.sleep(0.05)
        return "done"

    assert sleepy() == "done"
    [duration] = app_metrics(app).find("task.duration", task="tests.sleepy")
    assert duration.kind == "timing"
    assert duration.tags == {"task": "tests.sleepy", "status": "ok"}
    assert 50 <= duration.value < 5_000


def test_memory_change_is_in_bytes() -> None:
    """task.memory_change is an int number of bytes: keeping 32 MiB shows as ~32 MiB."""
    app = make_app()
    size = 32 * 1024 * 1024

    @instrumented_task(name="tests.hungry", app=app)
    def hungry() -> int:
        _kept.append(b"x" * size)  # kept past the end of the task, so the RSS grows
        return len(_kept[-1])

    try:
        assert hungry.apply().result == size
        [memory] = app_metrics(app).find("task.memory_change", task="tests.hungry")
    finally:
        _kept.clear()
    assert memory.kind == "gauge"
    assert memory.tags == {"task": "tests.hungry"}
    assert isinstance(memory.value, int)
    assert size * 0.9 <= memory.value < size * 2


def test_failed_task_records_duration_with_failed_status() -> None:
    """A body that raises still records its duration, tagged status=failed."""
    app = make_app()

    @instrumented_task(name="tests.broken", app=app)
    def broken() -> None:
        raise ValueError("broken on purpose")

    with pytest.raises(ValueError, match="broken on purpose"):
        broken()
    [duration] = app_metrics(app).find("task.duration", task="tests.broken")
    assert duration.tags["status"] == "failed"
    assert len(app_metrics(app).find("task.memory_change", task="tests.broken")) == 1


def test_stat_suffix_names_the_metric_instance() -> None:
    """With stat_suffix, task metrics are tagged <name>.<suffix of the call's arguments>."""
    app = make_app()

    @instrumented_task(name="tests.batch", app=app, stat_suffix=lambda batch, **_: f"batch_{batch}")
    def batch(batch: int, size: int = 1) -> int:
        return batch * size

    assert batch(3, size=2) == 6
    assert batch.apply((4,), {"size": 5}).result == 20
    metrics = app_metrics(app)
    assert len(metrics.find("task.duration", task="tests.batch.batch_3")) == 1
    assert len(metrics.find("task.memory_change", task="tests.batch.batch_3")) == 1
    assert len(metrics.find("task.duration", task="tests.batch.batch_4")) == 1
    assert metrics.find("task.duration", task="tests.batch") == []


def test_record_timing_false_records_no_timing() -> None:
    """A task declared with record_timing=False records neither duration nor memory."""
    app = make_app()

    @instrumented_task(name="tests.quiet", app=app, record_timing=False)
    def quiet() -> int:
        return 1

    assert quiet.apply().result == 1
    assert app_metrics(app).samples == []


def test_queue_time_from_the_enqueue_header() -> None:
    """apply() with the enqueue header records task.queue_time in ms since that time."""
    app = make_app()

    @instrumented_task(name="tests.queued", app=app, stat_suffix=lambda: "s")
    def queued() -> str:
        return "ok"

    result = queued.apply(headers={ENQUEUED_AT_HEADER: time.time() - 2.0})
    assert result.result == "ok"
    [waited] = app_metrics(app).find("task.queue_time")
    assert waited.kind == "timing"
    assert waited.tags == {"task": "tests.queued.s"}
    assert 2_000 <= waited.value < 10_000


def test_no_queue_time_without_a_usable_header() -> None:
    """Without the header (or with a non-numeric one) no queue time is recorded."""
    app = make_app()

    @instrumented_task(name="tests.unqueued", app=app)
    def unqueued() -> None:
        pass

    unqueued()
    unqueued.apply()
    unqueued.apply(headers={ENQUEUED_AT_HEADER: "yesterday"})
    metrics = app_metrics(app)
    assert metrics.find("task.queue_time") == []
    assert len(metrics.find("task.duration", task="tests.unqueued")) == 3


# -- silo limits --------------------------------------------------------------------

CallWay = Callable[[InstrumentedTask], object]

CALL_WAYS: list[Any] = [
    pytest.param(lambda t: t(2, 3), id="call"),
    pytest.param(lambda t: t.delay(2, 3), id="delay"),
    pytest.param(lambda t: t.apply_async((2, 3)), id="apply_async"),
    pytest.param(lambda t: t.s(2, 3), id="s"),
    pytest.param(lambda t: t.signature((2, 3)), id="signature"),
    pytest.param(lambda t: t.si(2, 3), id="si"),
    pytest.param(lambda t: t.apply((2, 3)), id="apply"),
    pytest.param(lambda t: t.map([(2, 3)]), id="map"),
    pytest.param(lambda t: t.chunks([(2, 3)], 1), id="chunks"),
]

SILO_MESSAGE = (
    r"task 'tests\.regional' may run only in silo mode region; "
    r"this process runs in 'control'"
)


def regional_task(app: StatewrightCelery, ran: list[int]) -> InstrumentedTask:
    @instrumented_task(name="tests.regional", app=app, silo_mode=SiloMode.REGION)
    def regional(a: int, b: int) -> int:
        ran.append(a + b)
        return a + b

    return regional


@pytest.mark.parametrize("way", CALL_WAYS)
def test_every_way_of_calling_checks_the_silo(way: CallWay) -> None:
    """In a CONTROL process, calling a REGION task any way raises SiloLimitError naming both."""
    app = make_app(SiloMode.CONTROL)
    ran: list[int] = []
    task = regional_task(app, ran)
    with pytest.raises(SiloLimitError, match=SILO_MESSAGE):
        way(task)
    assert ran == []
    assert app_metrics(app).samples == []


SIGNATURE_WAYS: list[Any] = [
    pytest.param(lambda s: s.delay(), id="delay"),
    pytest.param(lambda s: s.apply_async(), id="apply_async"),
    pytest.param(lambda s: s(), id="call"),
    pytest.param(lambda s: s.apply(), id="apply"),
]


@pytest.mark.parametrize("way", SIGNATURE_WAYS)
def test_signature_made_while_allowed_is_checked_when_used(
    way: Callable[[Signature], object],
) -> None:
    """A signature made in an allowed mode raises when used after the mode changes."""
    app = make_app(SiloMode.REGION)
    ran: list[int] = []
    signature = regional_task(app, ran).s(2, 3)
    app.statewright_silo_mode = SiloMode.CONTROL
    with pytest.raises(SiloLimitError, match=SILO_MESSAGE):
        way(signature)
    assert ran == []


def run_every_way(task: InstrumentedTask) -> list[object]:
    """Call ``task`` (which adds two numbers) every way there is, eagerly."""
    return [
        task(2, 3),
        task.apply((2, 3)).result,
        task.delay(2, 3).result,
        task.apply_async((2, 3)).result,
        task.s(2, 3)(),
        task.si(2, 3).apply().result,
        task.signature((2, 3)).delay().result,
    ]


def adder(app: StatewrightCelery, name: str, modes: Any) -> InstrumentedTask:
    @instrumented_task(name=name, app=app, silo_mode=modes)
    def add(a: int, b: int) -> int:
        return a + b

    return add


@pytest.mark.parametrize("limit", [SiloMode.REGION, SiloMode.CONTROL])
def test_monolith_runs_every_task(limit: SiloMode) -> None:
    """A MONOLITH process runs tasks limited to any silo, however they are called."""
    app = make_app(SiloMode.MONOLITH)
    app.conf.task_always_eager = True
    assert run_every_way(adder(app, "tests.limited", limit)) == [5] * 7


@pytest.mark.parametrize("mode", list(SiloMode))
def test_unlimited_task_runs_in_every_mode(mode: SiloMode) -> None:
    """A task with no silo limit runs in every silo mode."""
    app = make_app(mode)
    app.conf.task_always_eager = True
    assert run_every_way(adder(app, "tests.anywhere", None)) == [5] * 7


@pytest.mark.parametrize("mode", [SiloMode.CONTROL, SiloMode.REGION])
def test_task_allowing_two_modes_runs_in_both(mode: SiloMode) -> None:
    """A task allowing (CONTROL, REGION) runs in either."""
    app = make_app(mode)
    app.conf.task_always_eager = True
    task = adder(app, "tests.both", (SiloMode.CONTROL, SiloMode.REGION))
    assert task.silo_mode == frozenset({SiloMode.CONTROL, SiloMode.REGION})
    assert run_every_way(task) == [5] * 7


def test_silo_error_lists_every_allowed_mode() -> None:
    """The error names all the modes a task allows, sorted."""
    app = make_app(SiloMode.CONTROL)
    task = adder(app, "tests.nowhere_here", (SiloMode.REGION, SiloMode.MONOLITH))
    with pytest.raises(SiloLimitError, match=r"silo mode monolith, region; .* 'control'"):
        task(1, 1)


# -- sentry -------------------------------------------------------------------------


class CapturingTransport(Transport):
    """A Sentry transport that keeps the events instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(dict(event))


@pytest.fixture
def sentry_events() -> Iterator[list[Event]]:
    """Sentry initialised with a capturing transport; the client is closed and unset after."""
    transport = CapturingTransport()
    sentry_sdk.init(dsn="http://key@127.0.0.1:9/1", transport=transport, default_integrations=False)
    try:
        yield transport.events
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


def test_sentry_event_carries_task_and_step_tags(sentry_events: list[Event]) -> None:
    """An event captured after bind_step carries task_name, transaction_id and the step's tags."""
    app = make_app()

    @instrumented_task(name="tests.reporting", app=app)
    def reporting() -> None:
        bind_step(workflow="w", run="r1", state="s", attempt=2)
        sentry_sdk.capture_message("something to look at")

    reporting.apply(task_id="task-123")
    [event] = sentry_events
    assert event["message"] == "something to look at"
    tags = event["tags"]
    assert tags["task_name"] == "tests.reporting"
    assert tags["transaction_id"] == "task-123"
    assert {k: str(tags[k]) for k in ("workflow", "run", "state", "attempt")} == {
        "workflow": "w",
        "run": "r1",
        "state": "s",
        "attempt": "2",
    }


def test_sentry_tags_do_not_outlive_the_task(sentry_events: list[Event]) -> None:
    """Events captured after a task, or in the next task, do not carry its tags."""
    app = make_app()

    @instrumented_task(name="tests.tagging", app=app)
    def tagging(run: str) -> None:
        if run:
            bind_step(workflow="w", run=run)
        sentry_sdk.capture_message(f"inside {run or 'nothing'}")

    tagging.apply(("r1",))
    tagging.apply(("",))
    sentry_sdk.capture_message("outside")

    first, second, outside = sentry_events
    assert first["tags"]["run"] == "r1"
    assert "run" not in second["tags"]
    assert "workflow" not in second["tags"]
    assert second["tags"]["task_name"] == "tests.tagging"
    assert first["tags"]["transaction_id"] != second["tags"]["transaction_id"]
    assert not {"task_name", "run", "workflow"} & set(outside.get("tags", {}))


class Tagged(Workflow):
    """One step that reports to Sentry and logs; its first attempt fails."""

    name = "tagged"
    transitions = [("probed", "probing", "done")]
    terminal = ["done"]
    retry = FAST_RETRY

    @step(initial=True, reason="The probe failed")
    def probing(self, ctx: StepContext) -> Literal["probed"]:
        ctx.log.info("probing", attempt_seen=ctx.attempt)
        if ctx.attempt == 1:
            try:
                raise ConnectionError("the probe lost its connection")
            except ConnectionError as error:
                sentry_sdk.capture_exception(error)
                raise
        sentry_sdk.capture_message("the probe worked")
        return "probed"


def test_workflow_step_events_are_tagged_with_the_step(
    make_engine: EngineFactory, sentry_events: list[Event]
) -> None:
    """Events captured in a handler carry workflow, run, state, attempt and the task's tags."""
    engine = make_engine([Tagged])
    harness = WorkflowHarness(engine)
    run = engine.start("tagged")
    assert harness.run(run.id).status == "succeeded"

    failure, success = sentry_events
    assert failure["exception"]["values"][0]["type"] == "ConnectionError"
    assert success["message"] == "the probe worked"
    for event, attempt in ((failure, 1), (success, 2)):
        tags = event["tags"]
        assert tags["task_name"] == "tagged.probing"
        assert tags["transaction_id"]
        assert tags["workflow"] == "tagged"
        assert tags["run"] == run.id
        assert tags["state"] == "probing"
        assert str(tags["attempt"]) == str(attempt)
        assert "token" in tags
    assert failure["tags"]["transaction_id"] != success["tags"]["transaction_id"]


# -- logging ------------------------------------------------------------------------


@pytest.fixture
def log_capture() -> Iterator[LogCapture]:
    """structlog sending every line, with its context variables merged in, to a list."""
    capture = LogCapture()
    structlog.contextvars.clear_contextvars()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        yield capture
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


STEP_KEYS = {"workflow", "run", "state", "attempt", "token", "task", "task_id"}


def test_step_log_lines_carry_the_step_context(
    engine: Engine, harness: WorkflowHarness, log_capture: LogCapture
) -> None:
    """Engine log lines during a step carry workflow, run, state, attempt, token and task."""
    run = engine.start("pipeline")
    assert harness.run(run.id).status == "succeeded"

    step_lines = [
        e for e in log_capture.entries if e["event"] in ("step claimed", "step completed")
    ]
    assert len(step_lines) == 6
    for entry in step_lines:
        assert set(entry) >= STEP_KEYS, entry
        assert entry["workflow"] == "pipeline"
        assert entry["run"] == run.id
        assert entry["task"] == f"pipeline.{entry['state']}"
        assert entry["attempt"] == 1
        assert entry["task_id"]
    assert [e["state"] for e in step_lines if e["event"] == "step completed"] == [
        "fetching",
        "transforming",
        "storing",
    ]
    assert structlog.contextvars.get_contextvars() == {}


def test_handler_log_lines_carry_the_step_context(
    make_engine: EngineFactory, log_capture: LogCapture
) -> None:
    """A handler's own log lines carry the step's fields, with each attempt's number."""
    engine = make_engine([Tagged])
    harness = WorkflowHarness(engine)
    run = engine.start("tagged")
    assert harness.run(run.id).status == "succeeded"

    probes = [e for e in log_capture.entries if e["event"] == "probing"]
    assert [(e["attempt"], e["attempt_seen"]) for e in probes] == [(1, 1), (2, 2)]
    for entry in probes:
        assert set(entry) >= STEP_KEYS, entry
        assert (entry["workflow"], entry["run"], entry["state"]) == ("tagged", run.id, "probing")
        assert entry["task"] == "tagged.probing"
    assert probes[0]["task_id"] != probes[1]["task_id"]
    assert structlog.contextvars.get_contextvars() == {}


def test_task_log_context_does_not_leak(log_capture: LogCapture) -> None:
    """After a task (even a failing one) the caller's log context is back as it was."""
    app = make_app()

    @instrumented_task(name="tests.logging", app=app)
    def logging_task(fail: bool) -> None:
        bind_step(workflow="w", run="r1", state="s", attempt=1)
        structlog.get_logger("tests").info("inside")
        if fail:
            raise RuntimeError("failed on purpose")

    logging_task.apply((False,), task_id="t-1")
    assert structlog.contextvars.get_contextvars() == {}

    structlog.contextvars.bind_contextvars(request_id="outer")
    with pytest.raises(RuntimeError):
        logging_task(True)
    assert structlog.contextvars.get_contextvars() == {"request_id": "outer"}
    structlog.get_logger("tests").info("after")

    inside, inside_failing, after = log_capture.entries
    assert inside["task"] == "tests.logging"
    assert inside["task_id"] == "t-1"
    assert (inside["workflow"], inside["run"], inside["state"], inside["attempt"]) == (
        "w",
        "r1",
        "s",
        1,
    )
    assert inside_failing["request_id"] == "outer"
    assert inside_failing["workflow"] == "w"
    assert after == {"event": "after", "log_level": "info", "request_id": "outer"}


# -- JSON only ----------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_embedded_worker_refuses_pickle_and_keeps_running(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A pickled step message is discarded unrun; JSON messages after it still run."""
    engine = Engine(Settings(database_url=sqlite_url), WORKFLOWS)
    caplog.set_level(logging.ERROR, logger="celery")
    try:
        # a long relay interval: only this test publishes the refused run's message
        with EmbeddedWorker(engine, interval=60):
            with captured_queue(engine) as captured:
                refused = engine.start("pipeline")
            message = captured.published[0]
            assert message.kwargs["run_id"] == refused.id
            engine.celery.send_task(
                message.task_name,
                kwargs=message.kwargs,
                queue=message.queue,
                serializer="pickle",
            )

            # published after the pickle message on the same queue, so handled after it
            control = engine.start("pipeline")
            assert engine.wait(control.id, timeout=20).status == "succeeded"
            still = engine.get(refused.id)
            assert (still.status, still.state, still.attempt) == ("running", "fetching", 0)
            assert wait_until(lambda: "untrusted content of type pickle" in caplog.text, timeout=5)

            engine.celery.send_task(message.task_name, kwargs=message.kwargs, queue=message.queue)
            done = engine.wait(refused.id, timeout=20)
        assert done.status == "succeeded"
        assert [h.trigger for h in engine.history(refused.id)] == [
            "start",
            "fetched",
            "transformed",
            "stored",
        ]
    finally:
        engine.close()
