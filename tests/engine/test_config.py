"""Configuration from the environment, each value validated with a clear message."""

from __future__ import annotations

import pytest

from statewright import ConfigurationError, Settings, SiloMode


def test_defaults_are_embedded_sqlite_monolith() -> None:
    """With nothing set: a SQLite file here, the embedded broker, monolith mode."""
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///statewright.db"
    assert settings.embedded
    assert settings.broker_url is None
    assert settings.silo_mode is SiloMode.MONOLITH
    assert settings.continue_for == 1.0


def test_values_are_read_from_the_environment() -> None:
    """Every STATEWRIGHT_* variable reaches the settings."""
    settings = Settings.from_env(
        {
            "STATEWRIGHT_DATABASE_URL": "postgresql://app@db/prod",
            "STATEWRIGHT_BROKER_URL": "redis://cache:6379/0",
            "STATEWRIGHT_SILO_MODE": "Region",
            "STATEWRIGHT_WORKFLOWS": "a.b, c",
            "STATEWRIGHT_STATSD_ADDR": "127.0.0.1:8125",
            "STATEWRIGHT_LEASE_GRACE": "2.5",
            "STATEWRIGHT_CONTINUE_FOR": "0",
        }
    )
    assert settings.database_url == "postgresql+psycopg://app@db/prod"
    assert settings.broker_url == "redis://cache:6379/0"
    assert not settings.embedded
    assert settings.silo_mode is SiloMode.REGION
    assert settings.workflow_modules == ("a.b", "c")
    assert settings.statsd_addr == ("127.0.0.1", 8125)
    assert settings.lease_grace == 2.5
    assert settings.continue_for == 0.0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("STATEWRIGHT_DATABASE_URL", "not a url", "is not a database URL"),
        ("STATEWRIGHT_DATABASE_URL", "mysql://x@y/z", "uses 'mysql'; supported databases"),
        ("STATEWRIGHT_BROKER_URL", "kafka://k:9092", "has scheme 'kafka'; supported: redis"),
        ("STATEWRIGHT_SILO_MODE", "edge", "unknown silo mode 'edge'; allowed: monolith"),
        ("STATEWRIGHT_STATSD_ADDR", "localhost", "is not host:port"),
        ("STATEWRIGHT_LEASE_GRACE", "-3", "is not a positive number of seconds"),
        ("STATEWRIGHT_LEASE_GRACE", "0", "'0' is not a positive number of seconds"),
        ("STATEWRIGHT_CONTINUE_FOR", "-1", "'-1' is not zero or a positive number of seconds"),
        ("STATEWRIGHT_CONTINUE_FOR", "soon", "'soon' is not zero or a positive number"),
    ],
)
def test_bad_values_are_named(variable: str, value: str, message: str) -> None:
    """A bad value is refused with the variable, the value and what is allowed."""
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env({variable: value})


def test_broker_password_is_not_echoed() -> None:
    """A refused broker URL is shown without its password."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"STATEWRIGHT_BROKER_URL": "kafka://user:hunter2@k:9092"})
    assert "hunter2" not in str(caught.value)


def test_embedded_broker_spellings() -> None:
    """An empty broker URL or 'embedded' both mean the embedded worker."""
    assert Settings.from_env({"STATEWRIGHT_BROKER_URL": ""}).embedded
    assert Settings.from_env({"STATEWRIGHT_BROKER_URL": "embedded"}).embedded


def test_continue_for_set_in_code_is_checked_too() -> None:
    """A negative ``continue_for`` passed to Settings is refused, naming the value."""
    with pytest.raises(ConfigurationError, match=r"continue_for -1\.0 is not zero or a positive"):
        Settings(continue_for=-1.0)
