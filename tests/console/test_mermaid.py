"""Every Mermaid diagram statewright draws is accepted by Mermaid's own parser, run in
Chromium from Mermaid's published bundle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statewright import Engine, Workflow
from statewright.diagrams import mermaid
from statewright.testing import WorkflowHarness
from statewright.workflows import WORKFLOWS
from tests.sample_workflows import WORKFLOWS as SAMPLES

PARSE = """async (text) => {
  try { await mermaid.parse(text); return null; }
  catch (error) { return String(error.message || error); }
}"""


@pytest.fixture(scope="module")
def parser(browser: Any, mermaid_js: Path) -> Iterator[Any]:
    page = browser.new_page()
    page.set_content("<!doctype html><html><body></body></html>")
    page.add_script_tag(path=str(mermaid_js))
    yield lambda text: page.evaluate(PARSE, text)
    page.close()


def test_mermaids_parser_is_the_judge(parser: Any) -> None:
    """The parser in the page rejects a broken state diagram, so its acceptance means something."""
    assert parser("stateDiagram-v2\n  a --> : oops\n") is not None
    assert parser("stateDiagram-v2\n  a --> b: go\n") is None


@pytest.mark.parametrize(
    "workflow", [w for w in WORKFLOWS if issubclass(w, Workflow)], ids=lambda w: w.name
)
def test_every_shipped_workflow_parses(parser: Any, workflow: type[Workflow]) -> None:
    """The diagram of each shipped workflow, outcomes included, is valid Mermaid."""
    assert parser(mermaid(workflow.definition)) is None


def test_checked_in_mermaid_files_parse(parser: Any) -> None:
    """Every diagrams/*.mmd is valid Mermaid."""
    files = sorted((Path(__file__).resolve().parents[2] / "diagrams").glob("*.mmd"))
    assert files
    for path in files:
        assert parser(path.read_text()) is None, path.name


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_run_diagrams_parse_in_every_status(parser: Any, make_engine: Any) -> None:
    """Diagrams of failed, paused, cancelled and succeeded runs (path and reason marked) parse."""
    engine: Engine = make_engine(SAMPLES)
    harness = WorkflowHarness(engine)
    failed = harness.run(engine.start("pipeline", {"permanent": "storing"}).id)
    succeeded = harness.run(engine.start("pipeline", {}).id)
    paused = engine.pause(engine.start("pipeline", {}).id)
    cancelled = engine.cancel(engine.start("waiter", {}).id)
    odd = engine.abort(engine.start("waiter", {}).id, reason='He said "stop"; now: {x} <b> #1')
    for run in (failed, succeeded, paused, cancelled, odd):
        text = mermaid(engine.registry.get(run.workflow), run, engine.history(run.id))
        assert parser(text) is None, (run.status, text)
    assert "the input cannot be storing" in mermaid(
        engine.registry.get("pipeline"), failed, engine.history(failed.id)
    )
