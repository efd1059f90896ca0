"""Finding runs: whole ids and unique prefixes, business keys, and pages of a list."""

from __future__ import annotations

from typing import Literal

import pytest

from statewright import (
    DefinitionError,
    InvalidParamsError,
    RunNotFoundError,
    StepContext,
    Workflow,
    step,
)
from statewright.errors import AmbiguousRunIdError
from tests.conftest import EngineFactory


class Loan(Workflow):
    """A loan application, found by its loan number."""

    name = "loan"
    transitions = [("decided", "underwriting", "decided")]
    terminal = ["decided"]
    business_key = "loan_number"

    @step(initial=True)
    def underwriting(self, ctx: StepContext) -> Literal["decided"]:
        return "decided"


class Membership(Workflow):
    """A membership change, found by the organization's slug (a function of the params)."""

    name = "membership"
    transitions = [("applied", "applying", "applied")]
    terminal = ["applied"]
    business_key = staticmethod(lambda params: params.get("org", {}).get("slug"))

    @step(initial=True)
    def applying(self, ctx: StepContext) -> Literal["applied"]:
        return "applied"


def test_a_unique_prefix_names_its_run(make_engine: EngineFactory) -> None:
    """A whole id or any unique prefix of 4+ characters resolves to the whole id."""
    engine = make_engine([Loan])
    run = engine.start("loan", {"loan_number": "L-1"})
    assert engine.resolve_run_id(run.id) == run.id
    assert engine.resolve_run_id(run.id[:12].upper()) == run.id
    assert engine.resolve_run_id(f"  {run.id[:20]} ") == run.id


def test_ambiguous_short_and_unknown_prefixes_are_refused(make_engine: EngineFactory) -> None:
    """A shared prefix lists its runs; a short one asks for more; an unknown one is named."""
    engine = make_engine([Loan])
    first = engine.start("loan", {"loan_number": "L-1"})
    second = engine.start("loan", {"loan_number": "L-2"})
    shared = first.id[:4]
    assert second.id.startswith(shared)  # time-ordered ids share their leading digits
    with pytest.raises(AmbiguousRunIdError, match=f"{shared!r} is ambiguous") as caught:
        engine.resolve_run_id(shared)
    assert first.id in str(caught.value)
    assert second.id in str(caught.value)
    with pytest.raises(InvalidParamsError, match="'ab' is too short; give at least 4"):
        engine.resolve_run_id("ab")
    with pytest.raises(RunNotFoundError, match="no run with id 'ffffffff'"):
        engine.resolve_run_id("ffffffff")
    with pytest.raises(RunNotFoundError, match="no run with id 'not-an-id'"):
        engine.resolve_run_id("not-an-id")


def test_runs_are_found_by_their_business_key(make_engine: EngineFactory) -> None:
    """The declared key is stored at start; list(key=...) returns only that key's runs."""
    engine = make_engine([Loan, Membership])
    loan = engine.start("loan", {"loan_number": "L-7"})
    engine.start("loan", {"loan_number": "L-8"})
    again = engine.start("loan", {"loan_number": 7})
    member = engine.start("membership", {"org": {"slug": "acme"}})
    unkeyed = engine.start("membership", {"org": {}})
    assert loan.business_key == "L-7"
    assert again.business_key == "7"
    assert [r.id for r in engine.list(key="L-7")] == [loan.id]
    assert [r.id for r in engine.list(key="acme", workflow="membership")] == [member.id]
    assert unkeyed.business_key is None
    assert engine.get(member.id).business_key == "acme"


def test_a_run_without_its_declared_key_is_refused(make_engine: EngineFactory) -> None:
    """Params lacking the key's param, or a key that is not text, start nothing."""
    engine = make_engine([Loan, Membership])
    with pytest.raises(InvalidParamsError, match="keys its runs by param 'loan_number'"):
        engine.start("loan", {"number": "L-1"})
    with pytest.raises(InvalidParamsError, match="a key is a string or an integer"):
        engine.start("membership", {"org": {"slug": ["a"]}})
    assert engine.list() == []


def test_a_bad_business_key_declaration_is_refused() -> None:
    """A business_key that is neither a param name nor a function fails at declaration."""
    with pytest.raises(DefinitionError, match="business_key 'loan number' is not a param"):

        class Bad(Workflow):
            name = "bad_key"
            transitions = [("done", "working", "done")]
            terminal = ["done"]
            business_key = "loan number"

            @step(initial=True)
            def working(self, ctx: StepContext) -> Literal["done"]:
                return "done"


def test_pages_follow_each_other(make_engine: EngineFactory) -> None:
    """list(after=last id) continues newest first with no run repeated or skipped."""
    engine = make_engine([Loan])
    started = [engine.start("loan", {"loan_number": f"L-{n}"}).id for n in range(7)]
    seen: list[str] = []
    after = None
    while page := engine.list(limit=3, after=after):
        seen += [r.id for r in page]
        after = page[-1].id
    assert sorted(seen) == sorted(started)
    assert len(seen) == len(set(seen)) == 7
    assert seen == [r.id for r in engine.list(limit=100)]


def test_search_and_the_console_filter_runs_by_business_key(make_engine: EngineFactory) -> None:
    """RunFilter(business_key=...) and the console's ?key= keep only that key's runs."""
    from starlette.testclient import TestClient

    from statewright import RunFilter
    from statewright.console import Access, create_app

    engine = make_engine([Loan])
    wanted = engine.start("loan", {"loan_number": "L-2041"})
    other = engine.start("loan", {"loan_number": "L-7"})
    page = engine.search(RunFilter(business_key="L-2041"))
    assert [r.id for r in page.runs] == [wanted.id]
    assert engine.status_counts(RunFilter(business_key="L-7"))["running"] == 1
    app = create_app(engine, Access(token=None, user=None, loopback=True))
    with TestClient(app, base_url="http://127.0.0.1:8080") as client:
        listed = client.get("/runs", params={"key": "L-2041"})
    assert listed.status_code == 200
    assert wanted.id in listed.text
    assert other.id not in listed.text
    assert 'name="key" value="L-2041"' in listed.text
