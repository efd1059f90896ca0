"""The console against real databases: in process for HTTP checks, and as a real
`statewright web` process driven by a real headless Chromium."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_SERVICES
from tests.helpers import free_port
from tests.integration.processes import BIN, ROOT, Process, spawn

CHROMIUM = os.environ.get("STATEWRIGHT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
#: Screenshots and other files a reader of a test run may want to look at.
ARTIFACTS = ROOT / ".statewright" / "artifacts" / "console"
MERMAID_VERSION = "12.3.0"
MERMAID_DIR = ROOT / ".statewright" / "mermaid"
TOKEN = "console-test-token"


def missing(what: str) -> None:
    """Skip without a browser tool, unless CI demands every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} (STATEWRIGHT_REQUIRE_SERVICES=1; .ci/run installs it)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright (no browser download)."""
    if not Path(CHROMIUM).exists():
        missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def mermaid_js() -> Path:
    """Mermaid's own bundle (parser and renderer), fetched once with npm into .statewright/.

    Test processes running side by side (``pytest -n``) take turns: the first fetches it
    while the others wait on the lock, so none reads a half-written bundle.
    """
    bundle = MERMAID_DIR / "package" / "dist" / "mermaid.min.js"
    MERMAID_DIR.mkdir(parents=True, exist_ok=True)
    with (MERMAID_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if bundle.exists():
            return bundle
        npm = shutil.which("npm")
        if npm is None:
            missing("npm is not installed (apt-get install npm), so Mermaid cannot be fetched")
        subprocess.run(
            [str(npm), "pack", f"mermaid@{MERMAID_VERSION}", "--silent"],
            cwd=MERMAID_DIR,
            check=True,
            timeout=300,
        )
        with tarfile.open(MERMAID_DIR / f"mermaid-{MERMAID_VERSION}.tgz") as archive:
            archive.extractall(MERMAID_DIR, filter="data")
        return bundle


@pytest.fixture
def console_process(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, Process]]:
    """`statewright web` on a free port against the test's PostgreSQL database."""
    port = free_port()
    env = {
        **os.environ,
        "STATEWRIGHT_DATABASE_URL": pg_url,
        "STATEWRIGHT_WORKFLOWS": "statewright.workflows,tests.sample_workflows",
        "STATEWRIGHT_CONSOLE_TOKEN": TOKEN,
        "STATEWRIGHT_LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("STATEWRIGHT_BROKER_URL", None)
    argv = [str(BIN / "statewright"), "web", "--port", str(port)]
    process = spawn("console", argv, env, tmp_path / "console.log")
    try:
        process.wait_for("console on http://127.0.0.1", timeout=60)
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.stop()
