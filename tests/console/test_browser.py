"""The console in a real headless Chromium, served by a real `statewright web` process
against PostgreSQL while an embedded worker runs the steps."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from statewright import EmbeddedWorker, Engine, Settings
from statewright.console.server import SHUTDOWN_GRACE
from statewright.models import User
from statewright.workflows.relocation import Relocation, RelocationConfig, start_relocation
from statewright.workflows.relocation.crypto import generate_keypair, load_public_key
from statewright.workflows.relocation.exporter import export_organizations
from statewright.workflows.relocation.sample import SampleShape, build_sample
from tests.console.conftest import ARTIFACTS, TOKEN
from tests.integration.processes import Process
from tests.sample_workflows import WORKFLOWS as SAMPLES

pytestmark = [pytest.mark.services, pytest.mark.slow]

OWNER = "owner@target.example"
#: Long enough for a slow shared machine; a passing run never waits this long.
LIVE = 60_000
#: Records every state the live part of a run page shows, and marks the document so a
#: reload would be noticed.
WATCH = """() => {
  window.__loaded_once = true;
  window.__seen = [document.getElementById('run-state').textContent];
  new MutationObserver(() => {
    const state = document.getElementById('run-state');
    if (state) window.__seen.push(state.textContent);
  }).observe(document.getElementById('live'), {childList: true, subtree: true});
}"""


@pytest.fixture(scope="module")
def export_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An encrypted export of a small sample installation, and the target's private key."""
    directory = tmp_path_factory.mktemp("export")
    private, public = generate_keypair(directory / "keys", bits=2048)
    source = f"sqlite:///{directory / 'source.db'}"
    from statewright import migrate

    migrate(source)
    slugs = build_sample(source, SampleShape(orgs=2, users=40, orgs_per_user=2))
    export = directory / "export.swr"
    with export.open("wb") as handle:
        export_organizations(source, slugs, handle, public_key=load_public_key(public.read_bytes()))
    return export, private


@pytest.fixture
def worker(pg_url: str, tmp_path: Path, export_file: tuple[Path, Path]) -> Iterator[Engine]:
    """An engine with an embedded worker running steps on the console's database."""
    config = RelocationConfig(
        private_key_path=export_file[1],
        validation_interval=timedelta(seconds=1),
        email_backend=f"file:{tmp_path / 'mail'}",
    )
    engine = Engine(Settings(database_url=pg_url), [Relocation(config), *SAMPLES])
    with engine.db.transaction() as session:
        session.add(User(username="owner", email=OWNER, name="Owner", created_at=datetime.now(UTC)))
    with EmbeddedWorker(engine):
        yield engine
    engine.close()


@pytest.fixture
def console(console_process: tuple[str, Process]) -> str:
    return console_process[0]


def new_page(browser: Any, url: str, *, operator: bool) -> Any:
    credentials = {"username": "ops", "password": TOKEN} if operator else None
    context = browser.new_context(base_url=url, http_credentials=credentials)
    page = context.new_page()
    page.set_default_timeout(LIVE)
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    if operator:
        page.goto("/login")  # asks for basic auth; the browser then sends it with every form
    return page


def text_of(page: Any, selector: str) -> str:
    return str(page.locator(selector).inner_text())


def wait_for_run(page: Any, status: str, state: str | None = None) -> None:
    condition = f"document.getElementById('run-status').textContent === {status!r}"
    if state is not None:
        condition += f" && document.getElementById('run-state').textContent === {state!r}"
    page.wait_for_function(f"() => {condition}", timeout=LIVE)


def screenshot(page: Any, name: str) -> Path:
    """A full-page PNG in .statewright/artifacts/console/, once the diagram has loaded."""
    page.wait_for_function(
        "() => { const img = document.getElementById('run-diagram');"
        " return img === null || (img.complete && img.naturalWidth > 0); }"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_runs_are_listed_filtered_paged_and_refreshed(
    browser: Any, pg_url: str, console: str
) -> None:
    """The list shows counts and newest runs, filters by workflow and text, pages on, and
    picks up a new run by itself; a `<script>` param shows as text and never runs."""
    engine = Engine(Settings(database_url=pg_url), SAMPLES)
    first = engine.start("pipeline", {"customer": "<script>window.__pwned = 1</script>"})
    for n in range(55):
        engine.start("pipeline", {"customer": f"customer-{n:02d}"})
    waiters = [engine.start("waiter", {"customer": f"waiting-{n}"}).id for n in range(3)]
    engine.pause(waiters[0])
    page = new_page(browser, console, operator=False)
    page.goto("/runs")
    assert text_of(page, "#counts [data-status=running]") == "58"
    assert text_of(page, "#counts [data-status=paused]") == "1"
    assert page.locator("#runs-table tbody tr").count() == 50
    assert page.locator("#runs-table tbody tr").first.get_attribute("data-run") == waiters[2]
    page.click("#next-page")
    rows = page.locator("#runs-table tbody tr")
    assert rows.count() == 9
    assert rows.last.get_attribute("data-run") == first.id
    assert "<script>window.__pwned = 1</script>" in text_of(page, f"tr[data-run='{first.id}']")
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.scripts.length") == 1
    page.goto("/runs")
    page.select_option("select[name=workflow]", "waiter")
    page.click("#filters button[type=submit]")
    assert sorted(
        page.locator("#runs-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)")
    ) == sorted(waiters)
    page.fill("input[name=text]", "CUSTOMER-07")
    page.select_option("select[name=workflow]", "")
    page.click("#filters button[type=submit]")
    assert page.locator("#runs-table tbody tr").count() == 1
    page.goto("/runs?workflow=waiter")
    page.evaluate("window.__loaded_once = true")
    newest = engine.start("waiter", {"customer": "late"})
    page.wait_for_selector(f"tr[data-run='{newest.id}']", timeout=LIVE)
    assert page.evaluate("window.__loaded_once") is True
    engine.close()


def test_a_relocation_moves_live_and_is_paused_and_resumed_from_the_page(
    browser: Any, worker: Engine, console: str, export_file: tuple[Path, Path]
) -> None:
    """Paused at preprocessing, then asked to pause at notifying and resumed, the page
    follows the run state by state without reloading; resumed again, it completes."""
    run = start_relocation(worker, export_file[0], owner=OWNER, pause_at="preprocessing")
    page = new_page(browser, console, operator=True)
    page.goto(f"/runs/{run.id}")
    wait_for_run(page, "paused", "preprocessing")
    page.select_option("form[action$='/pause'] select[name=at]", "notifying")
    page.click("#op-pause")
    page.wait_for_url(re.compile(r"done=pause"))
    assert worker.get(run.id).pause_at == "notifying"
    page.click("#op-resume")
    page.wait_for_url(re.compile(r"done=resume"))
    page.evaluate(WATCH)
    wait_for_run(page, "paused", "notifying")
    assert page.evaluate("window.__loaded_once") is True
    seen = page.evaluate("window.__seen")
    assert "notifying" in seen
    assert len(set(seen)) >= 2, seen
    assert "resume continues that step" in text_of(page, "#run-waiting")
    screenshot(page, "relocation-paused-at-notifying")
    page.click("#op-resume")
    page.wait_for_url(re.compile(r"done=resume"))
    wait_for_run(page, "succeeded", "completed")
    timeline = text_of(page, "#timeline")
    for move in ("--uploaded-->", "--pause-->", "--resume-->", "--notified-->"):
        assert move in timeline
    # the diagram loads after the page: wait for it before measuring it
    page.wait_for_function("() => document.getElementById('run-diagram').complete")
    assert page.locator("#run-diagram").evaluate("img => img.naturalWidth") > 100
    screenshot(page, "relocation-completed")


def test_a_failed_run_shows_its_reason_and_error_and_is_redriven(
    browser: Any, worker: Engine, console: str
) -> None:
    """A failed run shows its reason and real error; an aborted one (reason redacted) is
    redriven and finished with a signal carrying JSON data."""
    broken = worker.start("pipeline", {"permanent": "storing"})
    worker.wait(broken.id, timeout=LIVE / 1000)
    page = new_page(browser, console, operator=True)
    page.goto(f"/runs/{broken.id}")
    assert text_of(page, "#run-status") == "failed"
    assert text_of(page, "#failure-reason") == "the input cannot be storing"
    assert "PermanentError" in text_of(page, "#traceback")
    screenshot(page, "pipeline-failed")
    waiting = worker.start("waiter", {"every": 30, "ready_after": 100})
    page.goto(f"/runs/{waiting.id}")
    page.fill(
        "form[action$='/abort'] input[name=reason]", "db postgresql://app:hunter2@db/app down"
    )
    page.click("#op-abort")
    page.click("#confirm")
    page.wait_for_url(re.compile(r"done=abort"))
    assert text_of(page, "#failure-reason") == "db postgresql://app:***@db/app down"
    assert "hunter2" not in page.content()
    page.click("#op-redrive")
    page.wait_for_url(re.compile(r"done=redrive"))
    wait_for_run(page, "running", "waiting")
    page.fill("form.signal input[name=name]", "ready")
    page.fill("form.signal textarea[name=data]", '{"approved_by": "<b>ops</b>"}')
    page.click("#op-signal")
    page.wait_for_url(re.compile(r"done=signal"))
    wait_for_run(page, "succeeded", "done")
    assert '"approved_by": "<b>ops</b>"' in text_of(page, "#run-context")
    assert "--redrive-->" in text_of(page, "#timeline")


def test_an_operation_without_credentials_is_refused(
    browser: Any, worker: Engine, console: str
) -> None:
    """A browser without credentials is refused an operation and the run is untouched;
    the same browser with them pauses it now."""
    run = worker.start("waiter", {"every": 30, "ready_after": 100})
    page = new_page(browser, console, operator=False)
    page.goto(f"/runs/{run.id}")
    page.click("#op-pause")
    assert "Operations need credentials" in text_of(page, "#denied")
    assert worker.get(run.id).status == "running"
    operator = new_page(browser, console, operator=True)
    operator.goto(f"/runs/{run.id}")
    operator.click("#op-pause")
    operator.wait_for_url(re.compile(r"done=pause"))
    wait_for_run(operator, "paused")
    assert worker.get(run.id).status == "paused"


def test_a_stopped_console_closes_the_live_pages_it_serves(
    browser: Any, pg_url: str, console_process: tuple[str, Process]
) -> None:
    """SIGTERM stops `statewright web` within seconds while a browser still shows a run's
    live page (its event stream never ends: waiting for it held the console until killed)."""
    url, process = console_process
    engine = Engine(Settings(database_url=pg_url), SAMPLES)
    try:
        run = engine.start("waiter", {})
        page = new_page(browser, url, operator=False)
        page.goto(f"/runs/{run.id}")
        wait_for_run(page, "running")
        os.killpg(process.popen.pid, signal.SIGTERM)
        started = time.monotonic()
        process.popen.wait(SHUTDOWN_GRACE + 10)  # raises if it is still serving the page
        assert time.monotonic() - started < SHUTDOWN_GRACE + 10
        page.context.close()
    finally:
        engine.close()
    # uvicorn stops gracefully, then dies of the signal it caught, as is conventional
    assert process.popen.returncode == -signal.SIGTERM, process.output()
