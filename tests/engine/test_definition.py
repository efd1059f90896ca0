"""Workflow declarations: validated when the class is declared, then frozen."""

from __future__ import annotations

from typing import Literal

import pytest

from statewright import DefinitionError, Poll, StepContext, Workflow, step
from tests.sample_workflows import Pipeline, Waiter


def test_definition_is_frozen_with_states_in_reading_order() -> None:
    """A valid class gets one frozen definition listing its states from the initial one."""
    definition = Pipeline.definition
    assert definition.name == "pipeline"
    assert definition.initial == "fetching"
    assert definition.states == ("fetching", "transforming", "storing", "done")
    assert definition.terminal == frozenset({"done"})
    with pytest.raises(AttributeError):
        definition.name = "other"  # type: ignore[misc]


def test_one_machine_per_definition_answers_legality() -> None:
    """The transitions machine built once per definition says which moves are declared."""
    definition = Pipeline.definition
    assert definition.destination("fetching", "fetched") == "transforming"
    assert definition.destination("fetching", "stored") is None
    assert definition.destination("nowhere", "fetched") is None
    assert definition.triggers_from("transforming") == ("transformed",)
    assert Pipeline.definition.machine is definition.machine


def test_version_changes_with_the_graph_only() -> None:
    """The definition hash is stable for the same graph and differs for another one."""
    assert Pipeline.definition.version == Pipeline.definition.version
    assert Pipeline.definition.version != Waiter.definition.version
    assert len(Pipeline.definition.version) == 16


def test_ahead_of_lists_reachable_states() -> None:
    """States ahead of a state are those reachable by declared moves."""
    assert Pipeline.definition.ahead_of("fetching") == {"transforming", "storing", "done"}
    assert Pipeline.definition.ahead_of("storing") == {"done"}


def _declare(**body: object) -> type[Workflow]:
    namespace = {"name": "broken", "terminal": ["done"], **body}
    return type("Broken", (Workflow,), namespace)


def _handler(state: str, **options: object) -> object:
    def handle(self: object, ctx: StepContext) -> str:
        return "next"

    handle.__name__ = state
    return step(state, **options)(handle)  # type: ignore[arg-type]


def test_missing_initial_state_is_refused() -> None:
    """A workflow without an initial state names the fix."""
    with pytest.raises(DefinitionError, match=r"no initial state.*initial=True"):
        _declare(transitions=[("next", "a", "done")], a=_handler("a"))


def test_two_initial_states_are_refused() -> None:
    """Two handlers marked initial are named in the error."""
    with pytest.raises(DefinitionError, match=r"2 initial states \('a', 'b'\)"):
        _declare(
            transitions=[("next", "a", "b"), ("go", "b", "done")],
            a=_handler("a", initial=True),
            b=_handler("b", initial=True),
        )


def test_unreachable_state_is_refused() -> None:
    """A state no move leads to is named."""
    with pytest.raises(DefinitionError, match=r"'island'.*cannot be reached from.*'a'"):
        _declare(
            transitions=[("next", "a", "done"), ("go", "island", "done")],
            a=_handler("a", initial=True),
            island=_handler("island"),
        )


def test_missing_handler_is_refused() -> None:
    """A non-terminal state without a handler is named with the states that have one."""
    with pytest.raises(DefinitionError, match=r"state 'b'.*no handler and is not terminal"):
        _declare(
            transitions=[("next", "a", "b"), ("go", "b", "done")], a=_handler("a", initial=True)
        )


def test_terminal_state_with_handler_is_refused() -> None:
    """Terminal states have no handler."""
    with pytest.raises(DefinitionError, match=r"terminal state 'done' has a handler"):
        _declare(
            transitions=[("next", "a", "done")],
            a=_handler("a", initial=True),
            done=_handler("done"),
        )


def test_terminal_state_with_way_out_is_refused() -> None:
    """A transition out of a terminal state is refused."""
    with pytest.raises(DefinitionError, match=r"terminal state 'done' has a transition out"):
        _declare(
            transitions=[("next", "a", "done"), ("again", "done", "a")],
            a=_handler("a", initial=True),
        )


def test_dead_end_state_is_refused() -> None:
    """A non-terminal state with no transition out is refused."""
    with pytest.raises(DefinitionError, match=r"'b' is not terminal and has no transition out"):
        _declare(
            transitions=[("next", "a", "b"), ("skip", "a", "done")],
            a=_handler("a", initial=True),
            b=_handler("b"),
        )


def test_reserved_trigger_is_refused() -> None:
    """Triggers the engine writes into history cannot be declared."""
    with pytest.raises(DefinitionError, match=r"trigger 'retry' is reserved"):
        _declare(transitions=[("retry", "a", "done")], a=_handler("a", initial=True))


def test_ambiguous_trigger_is_refused() -> None:
    """One trigger from one state leads to one place."""
    with pytest.raises(DefinitionError, match=r"'next' is declared twice from 'a'"):
        _declare(
            transitions=[("next", "a", "done"), ("next", "a", "b"), ("go", "b", "done")],
            a=_handler("a", initial=True),
            b=_handler("b"),
        )


def test_undeclared_returned_trigger_is_refused() -> None:
    """A trigger in a handler's Literal return type must be declared from its state."""
    with pytest.raises(DefinitionError, match=r"may return trigger 'oops'.*declared: 'next'"):

        class Typo(Workflow):
            name = "typo"
            transitions = [("next", "a", "done")]
            terminal = ["done"]

            @step(initial=True)
            def a(self, ctx: StepContext) -> Literal["next", "oops"] | Poll:
                return "next"


def test_bad_names_are_refused() -> None:
    """Workflow, state and trigger names are lowercase identifiers."""
    with pytest.raises(DefinitionError, match=r"workflow name 'Bad Name'"):
        _declare(
            name="Bad Name", transitions=[("next", "a", "done")], a=_handler("a", initial=True)
        )
    with pytest.raises(DefinitionError, match=r"trigger name 'Go!'"):
        _declare(transitions=[("Go!", "a", "done")], a=_handler("a", initial=True))


def test_missing_attribute_is_named() -> None:
    """A class without a transitions table says so."""
    with pytest.raises(DefinitionError, match=r"must declare 'transitions'"):
        _declare(a=_handler("a", initial=True))


def test_handlers_are_bound_to_one_instance() -> None:
    """Handlers are methods of one workflow instance made at declaration."""
    handler = Pipeline.definition.steps["fetching"].handler
    assert isinstance(getattr(handler, "__self__", None), Pipeline)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retry": 3}, r"retry must be a RetryPolicy; got 3"),
        ({"time_limit": 0}, r"time_limit must be a positive number of seconds; got 0"),
        ({"queue": ""}, r"queue must be a non-empty name; got ''"),
        ({"poll_limit": -1}, r"poll_limit must be a whole number of at least 1; got -1"),
        ({"poll_deadline": -10}, r"poll_deadline must be positive"),
    ],
)
def test_step_options_are_checked(options: dict[str, object], message: str) -> None:
    """Options that cannot work are refused at declaration, naming the value."""
    with pytest.raises(DefinitionError, match=message):
        _handler("a", initial=True, **options)


def test_poll_takes_seconds_or_a_timedelta() -> None:
    """Poll refuses an interval that is not a number or a timedelta."""
    with pytest.raises(TypeError, match=r"takes seconds \(a number\) or a timedelta; got '5'"):
        Poll(after="5")  # type: ignore[arg-type]
