"""Configuration: one frozen object, read once from the environment and passed down."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from statewright.errors import ConfigurationError
from statewright.logs import check_format, check_level
from statewright.retry import RetryPolicy
from statewright.silo import SiloMode

DEFAULT_DATABASE_URL = "sqlite:///statewright.db"
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp", "memory")
EMBEDDED = ("", "embedded")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the engine needs to know about its surroundings.

    ``broker_url`` of ``None`` means embedded: an in-memory transport and a worker
    inside the ``statewright`` process.
    """

    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str | None = None
    silo_mode: SiloMode = SiloMode.MONOLITH
    #: Modules whose ``Workflow`` subclasses the engine registers.
    workflow_modules: tuple[str, ...] = ("statewright.workflows",)
    statsd_addr: tuple[str, int] | None = None
    sentry_dsn: str | None = None
    default_retry: RetryPolicy = field(default_factory=RetryPolicy)
    default_time_limit: float = 300.0
    default_queue: str = "statewright"
    #: Extra time past a step's time limit before its lease expires.
    lease_grace: float = 30.0
    #: How long a dispatched step may wait for a worker before it is dispatched again.
    dispatch_timeout: float = 600.0
    relay_interval: float = 0.2
    relay_batch: int = 500
    #: How long one delivery may go on running its run's next steps in process, without
    #: a broker round trip (0: every step is its own message). Each step's time limit is
    #: then enforced up to this much late; see README, "Continuing in process".
    continue_for: float = 1.0
    #: How long a delivery may go on continuing once other messages wait on its queue
    #: (``statewright.fairness``); then its run's next step queues behind them.
    continue_when_busy: float = 0.1
    #: A pooled PostgreSQL connection that rested longer than this is pinged before use
    #: (0: on every checkout, SQLAlchemy's ``pool_pre_ping``); see ``statewright.persistence``.
    db_ping_after: float = 1.0
    #: Finished runs older than this are deleted with their history by the relay (in
    #: batches, see ``statewright.retention``); ``None`` keeps them for ever.
    retention: timedelta | None = None
    #: Bearer token (or basic-auth password) that lets the web console operate runs.
    console_token: str | None = field(default=None, repr=False)
    #: ``name:password`` of the web console's user for HTTP basic auth.
    console_user: str | None = field(default=None, repr=False)
    #: The port this process serves Prometheus metrics on (``worker --metrics-port``).
    metrics_port: int | None = None
    #: Whether Celery beat also runs the relay (``statewright beat --relay``).
    beat_relay: bool = False
    #: How much commands log (``None``: WARNING; workers log at INFO).
    log_level: str | None = None
    #: ``console`` or ``json`` (``None``: console on a terminal, else JSON lines).
    log_format: str | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.continue_for) and self.continue_for >= 0):
            raise ConfigurationError(
                f"continue_for {self.continue_for!r} is not zero or a positive number of seconds"
            )
        if not (math.isfinite(self.continue_when_busy) and self.continue_when_busy >= 0):
            raise ConfigurationError(
                f"continue_when_busy {self.continue_when_busy!r} is not zero or a positive "
                "number of seconds"
            )
        if not (math.isfinite(self.db_ping_after) and self.db_ping_after >= 0):
            raise ConfigurationError(
                f"db_ping_after {self.db_ping_after!r} is not zero or a positive number of seconds"
            )
        if self.retention is not None and not (
            isinstance(self.retention, timedelta) and self.retention > timedelta(0)
        ):
            raise ConfigurationError(
                f"retention {self.retention!r} is not a positive timedelta (or None: keep all)"
            )
        object.__setattr__(self, "database_url", parse_database_url(self.database_url))
        object.__setattr__(self, "broker_url", parse_broker_url(self.broker_url))

    @property
    def embedded(self) -> bool:
        return self.broker_url is None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``STATEWRIGHT_*`` variables, validating each."""
        env = os.environ if environ is None else environ
        modules = env.get("STATEWRIGHT_WORKFLOWS", "statewright.workflows")
        return cls(
            database_url=env.get("STATEWRIGHT_DATABASE_URL", DEFAULT_DATABASE_URL),
            broker_url=env.get("STATEWRIGHT_BROKER_URL"),
            silo_mode=_silo_mode(env),
            workflow_modules=tuple(m.strip() for m in modules.split(",") if m.strip()),
            statsd_addr=parse_statsd_addr(env.get("STATEWRIGHT_STATSD_ADDR")),
            sentry_dsn=env.get("STATEWRIGHT_SENTRY_DSN") or None,
            lease_grace=_seconds(env, "STATEWRIGHT_LEASE_GRACE", 30.0),
            default_time_limit=_seconds(env, "STATEWRIGHT_DEFAULT_TIME_LIMIT", 300.0),
            dispatch_timeout=_seconds(env, "STATEWRIGHT_DISPATCH_TIMEOUT", 600.0),
            relay_interval=_seconds(env, "STATEWRIGHT_RELAY_INTERVAL", 0.2),
            continue_for=_seconds(env, "STATEWRIGHT_CONTINUE_FOR", 1.0, allow_zero=True),
            continue_when_busy=_seconds(
                env, "STATEWRIGHT_CONTINUE_WHEN_BUSY", 0.1, allow_zero=True
            ),
            db_ping_after=_seconds(env, "STATEWRIGHT_DB_PING_AFTER", 1.0, allow_zero=True),
            default_queue=env.get("STATEWRIGHT_DEFAULT_QUEUE") or "statewright",
            retention=_age(env, "STATEWRIGHT_RETENTION"),
            console_token=env.get("STATEWRIGHT_CONSOLE_TOKEN") or None,
            console_user=parse_console_user(env.get("STATEWRIGHT_CONSOLE_USER")),
            metrics_port=parse_port(env.get("STATEWRIGHT_METRICS_PORT")),
            beat_relay=env.get("STATEWRIGHT_BEAT_RELAY", "") == "1",
            log_level=_log_level(env),
            log_format=log_format_from_env(env),
        )


def parse_database_url(value: str) -> str:
    """Check a database URL; plain ``postgresql://`` uses the psycopg 3 driver."""
    try:
        url = make_url(value.strip())
    except ArgumentError:
        raise ConfigurationError(
            f"STATEWRIGHT_DATABASE_URL {value!r} is not a database URL; expected e.g. "
            "sqlite:///statewright.db or postgresql://user@host/dbname"
        ) from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"STATEWRIGHT_DATABASE_URL uses {backend!r}; supported databases: postgresql, sqlite"
        )
    if backend == "postgresql" and url.drivername in ("postgresql", "postgresql+psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def parse_broker_url(value: str | None) -> str | None:
    """Check a broker URL; empty or ``embedded`` means the embedded transport."""
    if value is None or value.strip().lower() in EMBEDDED:
        return None
    scheme = urlsplit(value.strip()).scheme.lower()
    if scheme not in BROKER_SCHEMES:
        raise ConfigurationError(
            f"STATEWRIGHT_BROKER_URL {redact_url(value)!r} has scheme {scheme!r}; "
            f"supported: {', '.join(BROKER_SCHEMES)}, or unset for the embedded worker"
        )
    return value.strip()


def parse_statsd_addr(value: str | None) -> tuple[str, int] | None:
    """``host:port`` of a statsd/DogStatsD listener, or ``None``."""
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(
            f"STATEWRIGHT_STATSD_ADDR {value!r} is not host:port (e.g. 127.0.0.1:8125)"
        )
    return host, int(port)


_AGE = re.compile(r"^\s*(\d{1,6})\s*([smhdw])\s*$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(value: str, what: str = "age") -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s`` or ``2w`` as a positive ``timedelta``."""
    match = _AGE.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ConfigurationError(
            f"{what} {value!r} is not an age; use a positive whole number and a unit: "
            "30d (days), 12h (hours), 90m (minutes), 45s (seconds) or 2w (weeks)"
        )
    return timedelta(**{_AGE_UNITS[match.group(2)]: int(match.group(1))})


def _age(env: Mapping[str, str], key: str) -> timedelta | None:
    raw = env.get(key)
    return parse_age(raw, key) if raw else None


def parse_console_user(value: str | None) -> str | None:
    """``name:password`` for the console's basic auth, or ``None``."""
    if not value:
        return None
    name, _, password = value.partition(":")
    if not name or not password:
        raise ConfigurationError(
            "STATEWRIGHT_CONSOLE_USER must be name:password with both parts non-empty"
        )
    return value


def parse_port(value: str | None) -> int | None:
    """``STATEWRIGHT_METRICS_PORT``: a TCP port, or unset."""
    if not value:
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigurationError(
            f"STATEWRIGHT_METRICS_PORT {value!r} is not a TCP port; allowed: 1 to 65535"
        )
    return int(value)


def _log_level(env: Mapping[str, str]) -> str | None:
    raw = env.get("STATEWRIGHT_LOG_LEVEL")
    return check_level(raw) if raw else None


def log_format_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``STATEWRIGHT_LOG_FORMAT``, checked (for commands that build no settings too)."""
    env = os.environ if environ is None else environ
    raw = env.get("STATEWRIGHT_LOG_FORMAT")
    return check_format(raw) if raw else None


def _silo_mode(env: Mapping[str, str]) -> SiloMode:
    try:
        return SiloMode.parse(env.get("STATEWRIGHT_SILO_MODE", "monolith"))
    except ConfigurationError as error:
        raise ConfigurationError(f"STATEWRIGHT_SILO_MODE: {error}") from None


def redact_url(value: str) -> str:
    """A URL with its password replaced, for messages and logs."""
    parts = urlsplit(value)
    if parts.password is None:
        return value
    return value.replace(f":{parts.password}@", ":***@", 1)


def _seconds(
    env: Mapping[str, str], key: str, default: float, *, allow_zero: bool = False
) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        allowed = "zero or a positive" if allow_zero else "a positive"
        raise ConfigurationError(f"{key} {raw!r} is not {allowed} number of seconds")
    return seconds
