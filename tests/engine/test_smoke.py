"""A first end-to-end check of the harness."""

from engine import Engine
from engine.testing import WorkflowHarness


def test_pipeline_completes(engine: Engine, harness: WorkflowHarness) -> None:
    """A three-state run reaches its terminal state."""
    run = engine.start("pipeline")
    assert harness.run(run.id).status == "succeeded"
