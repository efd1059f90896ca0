"""The console's HTTP behaviour in process: access rules, CSRF, escaping, operations."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.testclient import TestClient

from statewright import ConfigurationError, Engine, IllegalOperationError, Settings
from statewright.console import Access, access_for, create_app, is_loopback
from tests.console.conftest import TOKEN

BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = create_app(engine, Access(token=TOKEN, user="ops:pa55", loopback=True))
    with TestClient(app, base_url="http://127.0.0.1:8080") as test_client:
        yield test_client


def csrf(client: TestClient, run_id: str) -> str:
    """The form token of a run page (and its cookie, kept by the client)."""
    page = client.get(f"/runs/{run_id}")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_params_are_shown_as_text_never_as_markup(engine: Engine, client: TestClient) -> None:
    """A `<script>` in params is escaped on the list and the run page; no inline script runs."""
    run = engine.start("pipeline", {"name": "<script>alert('x')</script>", "password": "hunter2"})
    for url in ("/runs", f"/runs/{run.id}"):
        page = client.get(url)
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "&lt;script&gt;alert(" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "hunter2" not in client.get(f"/runs/{run.id}").text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_operations_need_credentials_and_the_form_token(engine: Engine, client: TestClient) -> None:
    """Without credentials, with wrong ones, or without the page's token, nothing changes."""
    run = engine.start("waiter", {})
    token = csrf(client, run.id)
    anonymous = client.post(f"/runs/{run.id}/pause", data={"csrf": token})
    assert anonymous.status_code == 403
    assert "Operations need credentials" in anonymous.text
    assert 'href="/login"' in anonymous.text
    assert client.get("/login").headers["www-authenticate"].startswith("Basic")
    wrong = client.post(
        f"/runs/{run.id}/pause", data={"csrf": token}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 403
    forged = client.post(f"/runs/{run.id}/pause", data={"csrf": "x" * 43}, headers=BEARER)
    assert forged.status_code == 403
    assert "security token is missing or stale" in forged.text
    elsewhere = client.post(
        f"/runs/{run.id}/pause",
        data={"csrf": token},
        headers={**BEARER, "Origin": "http://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert engine.get(run.id).status == "running"
    done = client.post(
        f"/runs/{run.id}/pause", data={"csrf": token}, auth=("ops", "pa55"), follow_redirects=False
    )
    assert done.status_code == 303
    assert engine.get(run.id).status == "paused"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refusals_are_the_engines_own_words(engine: Engine, client: TestClient) -> None:
    """An operation the engine refuses shows the engine's message, with 409 or 400."""
    run = engine.start("waiter", {})
    with pytest.raises(IllegalOperationError) as refused:
        engine.redrive(run.id)
    token = csrf(client, run.id)
    page = client.post(f"/runs/{run.id}/redrive", data={"csrf": token}, headers=BEARER)
    assert page.status_code == 409
    assert str(refused.value) in page.text
    signal = client.post(
        f"/runs/{run.id}/signal",
        data={"csrf": token, "name": "approved", "data": "{}"},
        headers=BEARER,
    )
    assert signal.status_code == 409
    assert "where signal &#39;approved&#39; is not declared; allowed:" in signal.text
    bad_json = client.post(
        f"/runs/{run.id}/signal",
        data={"csrf": token, "name": "ready", "data": "{oops"},
        headers=BEARER,
    )
    assert bad_json.status_code == 400
    assert "signal data is not valid JSON" in bad_json.text
    not_object = client.post(
        f"/runs/{run.id}/signal",
        data={"csrf": token, "name": "ready", "data": "[1]"},
        headers=BEARER,
    )
    assert "signal data must be a JSON object (a dict); got list" in not_object.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_irreversible_operations_ask_first(engine: Engine, client: TestClient) -> None:
    """Cancel and abort show a confirmation page; only the confirmed form acts."""
    run = engine.start("waiter", {})
    token = csrf(client, run.id)
    asked = client.post(
        f"/runs/{run.id}/abort", data={"csrf": token, "reason": "bad data"}, headers=BEARER
    )
    assert asked.status_code == 200
    assert "This cannot be undone" in asked.text
    assert 'name="reason" value="bad data"' in asked.text
    assert engine.get(run.id).status == "running"
    client.post(
        f"/runs/{run.id}/abort",
        data={"csrf": token, "reason": "bad data", "confirm": "yes"},
        headers=BEARER,
    )
    aborted = engine.get(run.id)
    assert (aborted.status, aborted.failure_reason) == ("failed", "bad data")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reading_beyond_loopback_needs_credentials(engine: Engine) -> None:
    """Bound beyond loopback, every page asks for credentials; with them it reads."""
    app = create_app(engine, Access(token=TOKEN, loopback=False))
    with TestClient(app) as client:
        assert client.get("/runs").status_code == 401
        assert client.get("/workflows").status_code == 401
        assert client.get("/runs", headers=BEARER).status_code == 200
        assert client.get("/runs", auth=("anyone", TOKEN)).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_credentials_means_read_only_on_loopback_and_no_listening_elsewhere(
    engine: Engine,
) -> None:
    """Without credentials the console only reads, and refuses to listen beyond loopback."""
    app = create_app(engine, Access(loopback=True))
    run = engine.start("waiter", {})
    with TestClient(app) as client:
        token = csrf(client, run.id)
        refused = client.post(f"/runs/{run.id}/cancel", data={"csrf": token}, headers=BEARER)
        assert refused.status_code == 403
        assert "Operations are turned off" in refused.text
    assert all(map(is_loopback, ["127.0.0.1", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "example.com"]))
    with pytest.raises(ConfigurationError, match=r"listening on '0.0.0.0' .* needs credentials"):
        access_for(engine, "0.0.0.0")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_filters_and_unknown_runs_say_what_is_wrong(engine: Engine, client: TestClient) -> None:
    """A bad filter value or an unknown run gets a page naming it."""
    bad_status = client.get("/runs", params={"status": "stuck"})
    assert bad_status.status_code == 400
    assert "unknown status &#39;stuck&#39;" in bad_status.text
    bad_time = client.get("/runs", params={"started_from": "yesterday"})
    assert "started_from &#39;yesterday&#39; is not a time" in bad_time.text
    missing = client.get("/runs/" + "0" * 32)
    assert missing.status_code == 404
    assert client.get("/workflows/nowhere").status_code == 404


def test_console_credentials_come_from_the_environment() -> None:
    """STATEWRIGHT_CONSOLE_TOKEN and _USER are read once, and a malformed user is refused."""
    settings = Settings.from_env(
        {"STATEWRIGHT_CONSOLE_TOKEN": "t0k", "STATEWRIGHT_CONSOLE_USER": "ops:pw"}
    )
    assert (settings.console_token, settings.console_user) == ("t0k", "ops:pw")
    assert "t0k" not in repr(settings)
    with pytest.raises(ConfigurationError, match=r"name:password"):
        Settings.from_env({"STATEWRIGHT_CONSOLE_USER": "ops"})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_events_announce_each_change_of_the_run_and_stop_when_the_browser_leaves(
    engine: Engine,
) -> None:
    """The event stream sends the run's state at once, again after it changes, and ends
    when the browser goes away."""
    from statewright.console.events import run_events

    run = engine.start("waiter", {})

    class Browser:
        left = False

        async def is_disconnected(self) -> bool:
            return self.left

    async def follow() -> list[str]:
        browser = Browser()
        stream = run_events(browser, lambda: engine.get(run.id), interval=0.01)  # type: ignore[arg-type]
        received = [await anext(stream)]
        engine.pause(run.id)
        received.append(await anext(stream))
        browser.left = True
        received += [event async for event in stream]
        return received

    # in a thread of its own: a session's browser may hold an event loop in this one
    with ThreadPoolExecutor(1) as thread:
        first, second = thread.submit(asyncio.run, follow()).result()
    assert first.startswith("event: run\n")
    assert '"status": "running"' in first
    assert second.startswith("event: run\n")
    assert '"status": "paused"' in second


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_workflow_pages_show_states_options_counts_and_diagram(
    engine: Engine, client: TestClient
) -> None:
    """A workflow's page lists each state's retry policy, time limit, queue and silo, its
    runs by status, and serves its diagram as SVG."""
    engine.start("pipeline", {})
    engine.cancel(engine.start("pipeline", {}).id)
    listing = client.get("/workflows")
    assert 'href="/workflows/pipeline"' in listing.text
    page = client.get("/workflows/pipeline")
    states = page.text[page.text.index('id="states"') :]
    assert "<td>fetching</td>" in states
    assert "3 attempts, backoff 2.0 s, times 2.0 each retry, at most 300.0 s" in states
    assert "<td>20.0 s</td>" in states
    assert "We could not fetch the input" in states
    assert 'href="/runs?workflow=pipeline&amp;status=cancelled">cancelled <b>1</b>' in page.text
    diagram = client.get("/workflows/pipeline/diagram.svg")
    assert diagram.headers["content-type"] == "image/svg+xml"
    assert b"fetching" in diagram.content
    assert b"cancelled" in diagram.content
