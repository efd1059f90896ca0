"""Replay: recorded histories against the current definition, renames, and rebuilt states."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest

from statewright import InvalidParamsError, Poll, StepContext, Workflow, step
from statewright.replay import ReplayDivergenceError, load_history, replay
from statewright.workflows.relocation import Relocation, start_relocation
from tests.workflows.conftest import OWNER, Target

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
RECORDED = sorted(HISTORIES.glob("relocation-*.json"))


def recorded(name: str) -> dict[str, object]:
    return json.loads((HISTORIES / f"relocation-{name}.json").read_text())


def test_every_kind_of_history_is_recorded() -> None:
    """The recorded set covers the happy path, retries, polls, pauses, cancels and failures."""
    names = {p.stem.removeprefix("relocation-") for p in RECORDED}
    assert names == {
        "happy-path",
        "retried-step",
        "validation-timed-out-and-rerun",
        "paused-and-resumed",
        "cancelled",
        "failed",
    }


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_recorded_histories_replay(path: Path) -> None:
    """Each recorded relocation walks through the current definition to its recorded end."""
    document = json.loads(path.read_text())
    final = replay(Relocation.definition, load_history(document, path.name))
    assert final.status == document["status"]
    assert final.position == len(document["transitions"])


def test_state_is_rebuilt_at_any_position() -> None:
    """Replay can stop anywhere and say where the run stood."""
    history = load_history(recorded("paused-and-resumed"))
    at = {n: replay(Relocation.definition, history, until=n) for n in (1, 2, 6, 7, 10)}
    assert (at[1].state, at[1].status) == ("uploading", "running")
    assert (at[2].state, at[2].status) == ("preprocessing", "running")
    assert (at[6].state, at[6].status) == ("importing", "paused")
    assert (at[7].state, at[7].status) == ("importing", "running")
    assert (at[10].state, at[10].status) == ("completed", "succeeded")
    polled = replay(
        Relocation.definition, load_history(recorded("validation-timed-out-and-rerun")), until=6
    )
    assert (polled.state, polled.polls) == ("validating", 3)


class Reworked(Workflow):
    """Relocation with 'importing' renamed to 'loading' (and nothing declared about it)."""

    name = "relocation"
    transitions = [
        ("uploaded", "uploading", "preprocessing"),
        ("preprocessed", "preprocessing", "validating"),
        ("validated", "validating", "loading"),
        ("imported", "loading", "postprocessing"),
        ("postprocessed", "postprocessing", "notifying"),
        ("notified", "notifying", "completed"),
    ]
    terminal = ["completed"]

    @step(initial=True)
    def uploading(self, ctx: StepContext) -> Literal["uploaded"]:
        return "uploaded"

    @step()
    def preprocessing(self, ctx: StepContext) -> Literal["preprocessed"]:
        return "preprocessed"

    @step()
    def validating(self, ctx: StepContext) -> Literal["validated"] | Poll:
        return "validated"

    @step()
    def loading(self, ctx: StepContext) -> Literal["imported"]:
        return "imported"

    @step()
    def postprocessing(self, ctx: StepContext) -> Literal["postprocessed"]:
        return "postprocessed"

    @step()
    def notifying(self, ctx: StepContext) -> Literal["notified"]:
        return "notified"


class ReworkedWithRename(Reworked):
    """The same change, declaring the rename so old histories still replay."""

    name = "relocation"
    transitions = Reworked.transitions
    terminal = Reworked.terminal
    renames = {"importing": "loading"}


def test_removed_transition_breaks_replay_naming_run_position_and_move() -> None:
    """A history that used a transition the definition dropped fails with where and what."""
    document = recorded("happy-path")
    with pytest.raises(ReplayDivergenceError) as caught:
        replay(Reworked.definition, load_history(document))
    message = str(caught.value)
    assert f"run {document['run_id']} of 'relocation', position 5" in message
    assert "'validating' --validated--> 'importing' is no longer allowed" in message
    assert "from 'validating' the definition allows: 'validated'" in message
    assert caught.value.position == 5


def test_declared_rename_makes_old_histories_replay() -> None:
    """Declaring the rename lets every recorded history replay again."""
    for path in RECORDED:
        document = json.loads(path.read_text())
        final = replay(ReworkedWithRename.definition, load_history(document, path.name))
        assert final.status == document["status"]


def test_bad_history_documents_are_refused() -> None:
    """A file that is not a history says what it expected."""
    with pytest.raises(InvalidParamsError, match=r"is not a statewright history"):
        load_history({"format": "other"})
    with pytest.raises(InvalidParamsError, match=r"transitions\[0\] is \{.seq.: 1\}"):
        load_history({"format": "statewright.history", "version": 1, "transitions": [{"seq": 1}]})


def test_engine_replays_its_own_runs(target: Target) -> None:
    """statewright.replay walks a stored run's history and the export round-trips."""
    import json as _json

    from tests.workflows.test_relocation import good_document

    run = start_relocation(target.engine, _json.dumps(good_document()).encode(), owner=OWNER)
    target.harness.run(run.id)
    assert target.engine.replay(run.id).status == "succeeded"
    exported = target.engine.export_history(run.id)
    assert replay(Relocation.definition, load_history(exported)).state == "completed"


def test_harness_injects_a_failure_on_the_third_attempt_of_importing(target: Target) -> None:
    """With importing failing on attempts 1-3 the run fails with importing's reason."""
    from tests.workflows.test_relocation import good_document

    for attempt in (1, 2):
        target.harness.fail_at("importing", attempt, ConnectionError("database went away"))
    target.harness.fail_at("importing", 3, TimeoutError("import timed out"))
    run = start_relocation(target.engine, json.dumps(good_document()).encode(), owner=OWNER)
    failed = target.harness.run(run.id)
    assert (failed.status, failed.state, failed.attempt) == ("failed", "importing", 3)
    assert failed.failure_reason == "We could not import the export"
    assert failed.failure_detail is not None
    assert failed.failure_detail["error_message"] == "import timed out"
    target.harness.assert_transitions(
        run.id,
        [
            " --start--> uploading",
            "uploading --uploaded--> preprocessing",
            "preprocessing --preprocessed--> validating",
            "validating --poll--> validating",
            "validating --validated--> importing",
            "importing --retry--> importing",
            "importing --retry--> importing",
            "importing --fail--> importing",
        ],
    )


def _history(*rows: tuple[str | None, str, str]) -> dict[str, object]:
    return {
        "format": "statewright.history",
        "version": 1,
        "run_id": "r",
        "workflow": "relocation",
        "definition_version": "x",
        "transitions": [
            {"seq": n, "from": f, "trigger": t, "to": d, "attempt": 1}
            for n, (f, t, d) in enumerate(rows, start=1)
        ],
    }


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [(None, "start", "uploading"), (None, "start", "uploading")],
            "is not where a run can begin or begin again",
        ),
        (
            [
                (None, "start", "uploading"),
                ("uploading", "cancel", "uploading"),
                ("uploading", "uploaded", "preprocessing"),
            ],
            "happens to a cancelled run, but only to a running one",
        ),
        (
            [
                (None, "start", "uploading"),
                ("uploading", "fail", "uploading"),
                ("uploading", "uploaded", "preprocessing"),
            ],
            "happens to a failed run",
        ),
        (
            [(None, "start", "uploading"), ("uploading", "resume", "uploading")],
            "happens to a running run, but only to a paused one",
        ),
    ],
)
def test_impossible_histories_are_refused(
    rows: list[tuple[str | None, str, str]], message: str
) -> None:
    """Histories the engine could never write do not replay."""
    with pytest.raises(ReplayDivergenceError, match=message):
        replay(Relocation.definition, load_history(_history(*rows)))


def test_replay_until_zero_and_malformed_rows() -> None:
    """Position 0 is before the first row; rows with wrong types are refused by name."""
    history = load_history(recorded("happy-path"))
    assert replay(Relocation.definition, history, until=0).position == 0
    with pytest.raises(InvalidParamsError, match=r"not a JSON object"):
        load_history([1, 2])
    bad = _history((None, "start", "uploading"))
    bad["transitions"][0]["to"] = None  # type: ignore[index]
    with pytest.raises(InvalidParamsError, match=r"transitions\[0\] is"):
        load_history(bad)


REVIEWS = sorted(HISTORIES.glob("document-review-*.json"))


def test_waits_timeouts_and_deadlines_are_recorded() -> None:
    """Recorded histories cover a wait left by a signal, by its timeout, and a deadline."""
    names = {p.stem.removeprefix("document-review-") for p in REVIEWS}
    assert names == {"documents-received", "documents-expired", "review-past-deadline"}


@pytest.mark.parametrize("path", REVIEWS, ids=lambda p: p.stem)
def test_recorded_review_histories_replay(path: Path) -> None:
    """Each recorded document review walks through the current definition to its end."""
    from statewright.workflows.document_review import DocumentReview

    document = json.loads(path.read_text())
    final = replay(DocumentReview.definition, load_history(document, path.name))
    assert final.status == document["status"]
    assert final.position == len(document["transitions"])


def test_folded_polls_count_in_replay() -> None:
    """A folded poll row counts every poll it stands for; a bad count is refused."""
    from statewright.workflows.document_review import DocumentReview

    path = HISTORIES / "document-review-review-past-deadline.json"
    document = json.loads(path.read_text())
    polled = replay(DocumentReview.definition, load_history(document), until=4)
    assert (polled.state, polled.polls) == ("reviewing", 24)
    assert replay(DocumentReview.definition, load_history(document)).state == "timed_out"
    document["transitions"][3]["polls"] = 0
    with pytest.raises(InvalidParamsError, match=r"transitions\[3\] .* optionally polls"):
        load_history(document)


def test_a_deadline_row_fails_the_replayed_run() -> None:
    """The engine's 'deadline' event leaves the run failed in its state, paused or not."""
    history = _history(
        (None, "start", "uploading"),
        ("uploading", "pause", "uploading"),
        ("uploading", "deadline", "uploading"),
    )
    final = replay(Relocation.definition, load_history(history))
    assert (final.state, final.status) == ("uploading", "failed")
