"""The live progress of a run tells the truth: the path it took, the attempts each state
used, whole ids; and console emails never touch stdout."""

from __future__ import annotations

import io
from email.message import EmailMessage
from pathlib import Path

import pytest
from rich.console import Console

from statewright import Engine
from statewright.progress import path_taken, render
from statewright.testing import WorkflowHarness
from statewright.workflows.relocation.mail import ConsoleBackend, compose


def shown(engine: Engine, run_id: str, width: int = 100) -> str:
    """The run's progress as a terminal of ``width`` columns would show it."""
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(render(engine, engine.get(run_id)))
    return console.export_text()


def rows(text: str) -> dict[str, tuple[str, str]]:
    """State -> (mark, note) of each row of a rendered progress table."""
    found = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) == 4:
            found[cells[1]] = (cells[0], cells[3])
    return found


def test_only_states_entered_are_ticked(engine: Engine, harness: WorkflowHarness) -> None:
    """A run that branched to 'rejected' shows the path it took, not the branch it skipped."""
    run = engine.start("approval", {})
    harness.step()
    engine.signal(run.id, "rejected")
    history = engine.history(run.id)
    assert path_taken(history) == ["awaiting", "rejected"]
    text = shown(engine, run.id)
    assert "applying" not in text
    assert "applied" not in text
    assert {state: mark for state, (mark, _) in rows(text).items()} == {
        "awaiting": "✓",
        "rejected": "✓",
    }


def test_states_ahead_are_dim_and_unticked(engine: Engine, harness: WorkflowHarness) -> None:
    """A running run lists the states still ahead with a dot, never a tick."""
    run = engine.start("pipeline", {}, pause_at="storing")
    harness.run(run.id)
    found = rows(shown(engine, run.id))
    assert [(state, mark) for state, (mark, _) in found.items()] == [
        ("fetching", "✓"),
        ("transforming", "✓"),
        ("storing", "‖"),
        ("done", "·"),
    ]


def test_attempts_each_state_used_come_from_history(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A state that needed two attempts says so once the run has finished."""
    run = engine.start("pipeline", {"fail": {"transforming": 1}})
    assert harness.run(run.id).status == "succeeded"
    found = rows(shown(engine, run.id))
    assert found["transforming"] == ("✓", "(2 attempts)")
    assert found["fetching"] == ("✓", "")


def test_the_header_keeps_the_whole_id(engine: Engine) -> None:
    """However narrow the terminal, the run id is printed whole on one line."""
    run = engine.start("pipeline", {})
    assert any(run.id in line for line in shown(engine, run.id, width=40).splitlines())


def test_console_mail_writes_a_summary_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console backend prints one line per message on stderr and keeps the body in a
    file; stdout stays empty (it may carry a command's JSON)."""
    message: EmailMessage = compose(
        "from@example.com", "kim@example.com", "Welcome", "The whole body.", key="welcome-1"
    )
    ConsoleBackend(tmp_path / "mail").send(message)
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("email to kim@example.com: Welcome (")
    [saved] = (tmp_path / "mail").glob("*.eml")
    assert str(saved) in line
    assert "The whole body." in saved.read_text()
