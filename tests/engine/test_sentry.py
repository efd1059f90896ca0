"""Sentry through a real local HTTP endpoint: a failed run is reported once, with its tags."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sentry_sdk

from statewright import Engine, Settings
from statewright.observability import setup_sentry
from statewright.testing import WorkflowHarness


class Collector(BaseHTTPRequestHandler):
    """Accepts Sentry envelopes and keeps their events."""

    events: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == "event":
                type(self).events.append(json.loads(payload))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sentry_endpoint() -> Iterator[str]:
    Collector.events = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_address[1]}/1"
    server.shutdown()
    client = sentry_sdk.get_client()
    client.close()
    sentry_sdk.get_global_scope().set_client(None)


def test_failed_run_is_reported_once_with_its_tags(engine: Engine, sentry_endpoint: str) -> None:
    """Three failing attempts make one Sentry event, tagged with workflow, run, state, attempt."""
    assert setup_sentry(
        Settings(database_url=engine.settings.database_url, sentry_dsn=sentry_endpoint)
    )
    run = engine.start("pipeline", {"fail": {"storing": 9}})
    assert WorkflowHarness(engine).run(run.id).status == "failed"
    sentry_sdk.flush(timeout=10)
    assert len(Collector.events) == 1
    tags = Collector.events[0]["tags"]
    assert tags["workflow"] == "pipeline"
    assert tags["run"] == run.id
    assert tags["state"] == "storing"
    assert str(tags["attempt"]) == "3"
    assert tags["task_name"] == "pipeline.storing"
    exception = Collector.events[0]["exception"]["values"][-1]
    assert exception["type"] == "ConnectionError"
    assert Collector.events[0]["extra"]["failure_reason"] == "We could not store the result"


def test_no_dsn_no_sentry() -> None:
    """Without STATEWRIGHT_SENTRY_DSN nothing is initialised."""
    assert not setup_sentry(Settings())
