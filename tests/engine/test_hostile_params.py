"""Hostile params and signal data are refused naming the problem, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from statewright import Engine, InvalidParamsError


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


HOSTILE = [
    pytest.param(nested(2000), r"more than 64 levels deep; the depth limit is 64", id="deep"),
    pytest.param({"n": 10**4999}, r"\['n'\] is an integer of 16\d\d\d bits.*128 bits", id="int"),
    pytest.param({"n": -(10**4999)}, r"\['n'\] is an integer of .*128 bits", id="negative-int"),
    pytest.param({"note": "a\x00b"}, r"\['note'\] contains a NUL character", id="nul"),
    pytest.param({"a\x00": 1}, r"key 'a\\x00' contains a NUL character", id="nul-key"),
    pytest.param({"xs": [[["\x00"]]]}, r"\['xs'\]\[0\]\[0\]\[0\] contains a NUL", id="nul-list"),
]


@pytest.mark.parametrize(("params", "problem"), HOSTILE)
def test_hostile_params_are_refused_at_start(
    engine: Engine, params: dict[str, Any], problem: str
) -> None:
    """start refuses the value with InvalidParamsError naming it; no run is written."""
    with pytest.raises(InvalidParamsError, match=r"^params.*" + problem):
        engine.start("pipeline", params)
    assert engine.list() == []


@pytest.mark.parametrize(("data", "problem"), HOSTILE)
def test_hostile_signal_data_is_refused(engine: Engine, data: dict[str, Any], problem: str) -> None:
    """signal refuses the value with InvalidParamsError naming it; the run does not move."""
    run = engine.start("approval")
    with pytest.raises(InvalidParamsError, match=r"^signal data.*" + problem):
        engine.signal(run.id, "approved", data)
    after = engine.get(run.id)
    assert (after.state, after.context) == ("awaiting", {})
    assert [h.trigger for h in engine.history(run.id)] == ["start"]


def test_nesting_up_to_the_limit_is_stored_whole(engine: Engine) -> None:
    """Params nested exactly at the depth limit and a 128-bit integer are kept as given."""
    params = {"deep": nested(63), "big": 2**128 - 1, "small": -(2**128) + 1}
    run = engine.start("pipeline", params)
    assert engine.get(run.id).params == params


@pytest.mark.parametrize("params", [{"amount": 1e23}, {"a": [1.5, 1e-7, 2.0, 10**20]}])
def test_an_exact_retry_of_an_idempotent_start_returns_the_run(
    engine: Engine, params: dict[str, Any]
) -> None:
    """The same key and the same params return the same run, however the database gives
    numbers back (PostgreSQL's JSONB returns 1e23 as an integer)."""
    first = engine.start("pipeline", params, idempotency_key="pay-1")
    assert engine.start("pipeline", params, idempotency_key="pay-1").id == first.id
    assert len(engine.list()) == 1
