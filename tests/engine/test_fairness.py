"""Fair continuation: a delivery continues its run in process while its queue is empty,
and once other messages wait there (asked of a real broker) only within its quantum,
``busy_for`` seconds; then the run's next step queues behind them as a message."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from celery import Celery
from kombu import Consumer, Producer, Queue
from kombu.message import Message

from statewright import Engine, Settings
from statewright.errors import ConfigurationError
from statewright.fairness import FairContinuation, broker_waiting
from statewright.testing import WorkflowHarness
from tests.conftest import AMQP_URL, REDIS_URL, EngineFactory, require_service
from tests.sample_workflows import WORKFLOWS

CONTINUE_FOR = 5.0


class Broker:
    """A Celery app on a real broker and a queue of its own that tests fill."""

    def __init__(self, url: str) -> None:
        self.app = Celery("fairness-test", broker=url, set_as_current=False)
        self.queue = f"statewright-fairness-{uuid.uuid4().hex[:12]}"

    def fill(self, count: int) -> None:
        """Publish ``count`` messages to the queue (declaring it)."""
        with self.app.producer_or_acquire() as producer:
            for _ in range(count):
                self.app.send_task(
                    "statewright.fairness_probe", queue=Queue(self.queue), producer=producer
                )

    def close(self) -> None:
        with self.app.connection_for_write() as connection:
            channel = connection.default_channel
            try:
                channel.queue_purge(self.queue)
                channel.queue_delete(self.queue)
            except Exception:  # never declared: nothing to remove
                pass
        self.app.close()


@pytest.fixture(params=["redis", "amqp"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    if request.param == "redis":
        require_service("Redis", "127.0.0.1", 6379)
        made = Broker(REDIS_URL)
    else:
        require_service("RabbitMQ", "127.0.0.1", 5672)
        made = Broker(AMQP_URL)
    yield made
    made.close()


@pytest.fixture
def redis_broker() -> Iterator[Broker]:
    require_service("Redis", "127.0.0.1", 6379)
    made = Broker(REDIS_URL)
    yield made
    made.close()


def test_the_broker_tells_how_many_messages_wait(broker: Broker) -> None:
    """A queue never declared or emptied counts 0; published messages are counted (by
    RabbitMQ once it has routed them: publishing there does not wait for that)."""
    waiting = broker_waiting(broker.app)
    assert waiting(broker.queue) == 0
    broker.fill(3)
    deadline = time.monotonic() + 5.0
    while waiting(broker.queue) != 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiting(broker.queue) == 3


def test_a_missing_queue_leaves_the_publishing_channel_alone() -> None:
    """On RabbitMQ a queue that does not exist counts 0 without the broker closing the
    pooled connection's default channel (whose consumers and settings a close would
    drop); then a queue with messages in it counts them."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    broker = Broker(AMQP_URL)
    received: list[object] = []
    try:
        with broker.app.pool.acquire(block=True) as connection:
            channel = connection.default_channel
            listened = Queue(f"{broker.queue}-listened", channel=channel, auto_delete=True)
            listened.declare()
            consumer = Consumer(channel, [listened], callbacks=[keep(received)], accept=["json"])
            consumer.consume()
        waiting = broker_waiting(broker.app)
        assert waiting(f"statewright-missing-{uuid.uuid4().hex[:12]}") == 0
        with broker.app.pool.acquire(block=True) as connection:
            assert connection.default_channel is channel
            Producer(channel).publish({"n": 1}, routing_key=listened.name, serializer="json")
            connection.drain_events(timeout=5.0)
        assert received == [{"n": 1}]
        broker.fill(2)
        deadline = time.monotonic() + 5.0
        while waiting(broker.queue) != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting(broker.queue) == 2
    finally:
        broker.close()


def keep(received: list[object]) -> Callable[[object, Message], None]:
    def on_message(body: object, message: Message) -> None:
        received.append(body)
        message.ack()

    return on_message


def fair_engine(make_engine: EngineFactory, broker: Broker, busy_for: float) -> Engine:
    """An engine whose steps use the broker's queue, continuing fairly over it."""
    engine = make_engine(WORKFLOWS, continue_for=CONTINUE_FOR, default_queue=broker.queue)
    engine.executor.continuation.fairness = FairContinuation(
        broker_waiting(broker.app), busy_for, check_every=0.0
    )
    return engine


def deliveries_of(engine: Engine) -> list[str]:
    harness = WorkflowHarness(engine, continue_steps=True)
    run = engine.start("pipeline", {})
    assert harness.run(run.id).status == "succeeded"
    return [d.message.task_name for d in harness.deliveries]


def test_a_delivery_continues_freely_while_its_queue_is_empty(
    make_engine: EngineFactory, redis_broker: Broker
) -> None:
    """With nothing waiting, all three steps run in the first step's delivery, whatever
    its quantum."""
    engine = fair_engine(make_engine, redis_broker, busy_for=0.0)
    assert deliveries_of(engine) == ["pipeline.fetching"]


def test_a_delivery_hands_its_run_back_once_others_wait(
    make_engine: EngineFactory, redis_broker: Broker
) -> None:
    """With messages waiting and the quantum used up, each delivery runs its own step
    and no more."""
    redis_broker.fill(1)
    engine = fair_engine(make_engine, redis_broker, busy_for=0.0)
    assert deliveries_of(engine) == [
        "pipeline.fetching",
        "pipeline.transforming",
        "pipeline.storing",
    ]


def test_a_delivery_continues_within_its_quantum_while_others_wait(
    make_engine: EngineFactory, redis_broker: Broker
) -> None:
    """With messages waiting, a delivery still continues for ``busy_for`` seconds."""
    redis_broker.fill(1)
    engine = fair_engine(make_engine, redis_broker, busy_for=60.0)
    assert deliveries_of(engine) == ["pipeline.fetching"]


def test_the_quantum_counts_from_the_delivery_and_answers_are_kept_briefly() -> None:
    """A delivery within ``busy_for`` of its start continues without asking; past it,
    the broker is asked at most once per ``check_every`` for a queue."""
    asked: list[str] = []
    backlog = {"q": 4}
    now = [100.0]

    def waiting(queue: str) -> int:
        asked.append(queue)
        return backlog[queue]

    policy = FairContinuation(waiting, 0.1, check_every=0.5, clock=lambda: now[0])
    assert policy.allows("q", delivery=99.95)  # within its quantum: not asked
    assert asked == []
    assert not policy.allows("q", delivery=99.8)
    assert not policy.allows("q", delivery=99.8)
    assert asked == ["q"]  # the second question came within check_every
    backlog["q"] = 0
    now[0] += 1.0
    assert policy.allows("q", delivery=99.8)
    assert asked == ["q", "q"]


def test_continue_when_busy_is_checked() -> None:
    """A negative or non-numeric STATEWRIGHT_CONTINUE_WHEN_BUSY is refused, naming it."""
    with pytest.raises(ConfigurationError, match="STATEWRIGHT_CONTINUE_WHEN_BUSY '-1'"):
        Settings.from_env({"STATEWRIGHT_CONTINUE_WHEN_BUSY": "-1"})
    with pytest.raises(ConfigurationError, match="STATEWRIGHT_CONTINUE_WHEN_BUSY 'many'"):
        Settings.from_env({"STATEWRIGHT_CONTINUE_WHEN_BUSY": "many"})
    assert Settings.from_env({}).continue_when_busy == 0.1
    assert Settings.from_env({"STATEWRIGHT_CONTINUE_WHEN_BUSY": "0"}).continue_when_busy == 0
    with pytest.raises(ValueError, match="busy_for -2"):
        FairContinuation(lambda _queue: 0, -2)


def test_an_engine_on_a_broker_continues_fairly_over_it(sqlite_url: str) -> None:
    """An engine with a broker asks it about its queues; an embedded one has no policy."""
    require_service("Redis", "127.0.0.1", 6379)
    queue = f"statewright-fairness-{uuid.uuid4().hex[:12]}"
    settings = Settings(
        database_url=sqlite_url, broker_url=REDIS_URL, continue_when_busy=0.3, default_queue=queue
    )
    engine = Engine(settings, WORKFLOWS)
    try:
        policy = engine.executor.continuation.fairness
        assert policy is not None
        assert policy.busy_for == 0.3
        assert not policy.others_waiting(queue)
        with engine.celery.producer_or_acquire() as producer:
            engine.celery.send_task("pipeline.fetching", queue=Queue(queue), producer=producer)
        time.sleep(0.05)  # past the 20 ms an answer is kept
        assert policy.others_waiting(queue)
    finally:
        with engine.celery.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)
        engine.close()
    embedded = Engine(Settings(database_url=sqlite_url), WORKFLOWS)
    try:
        assert embedded.executor.continuation.fairness is None
    finally:
        embedded.close()
