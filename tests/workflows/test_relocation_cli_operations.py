"""``statewright relocation start --creator``, ``show`` and ``retry`` through the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import delete

from statewright.models import Organization
from tests.helpers import ROOT, cli_process
from tests.workflows.conftest import OWNER, Keys, Target
from tests.workflows.test_relocation import good_document, plain
from tests.workflows.test_relocation_operations import ADMIN, add_org, add_user


@pytest.mark.long
def test_start_show_and_retry(
    target: Target, database_url: str, keys: Keys, tmp_path: Path
) -> None:
    """A relocation started for an owner fails, shows its records, and is retried (show
    and retry taking a unique prefix of its id)."""
    env = {
        **os.environ,
        "STATEWRIGHT_DATABASE_URL": database_url,
        "STATEWRIGHT_WORKFLOWS": "statewright.workflows",
        "STATEWRIGHT_RELOCATION_PRIVATE_KEY": str(keys.private),
        "STATEWRIGHT_EMAIL_BACKEND": f"file:{tmp_path / 'cli-mail'}",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }
    env.pop("STATEWRIGHT_BROKER_URL", None)
    add_user(target, ADMIN, "admin")
    add_org(target, "acme-1")
    export = tmp_path / "acme.json"
    export.write_bytes(plain(good_document()))
    args = ["relocation", "start", str(export), "--owner", OWNER, "--creator", ADMIN, "--json"]
    started = cli_process(*args, env=env)
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["id"]
    assert target.harness.run(run_id).status == "failed"  # acme-1 exists here
    target.harness.run_all()
    shown = cli_process("relocation", "show", run_id[:12], "--json", env=env)  # a unique prefix
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert (info["owner"], info["creator"], info["run"]["status"]) == (OWNER, ADMIN, "failed")
    assert [f["kind"] for f in info["files"]] == ["upload"]
    assert sorted((e["kind"], e["recipient"], e["sent"]) for e in info["emails"]) == [
        ("failed", ADMIN, True),
        ("failed", OWNER, True),
        ("started", ADMIN, True),
        ("started", OWNER, True),
    ]
    table = cli_process("relocation", "show", run_id, env=env).stdout
    for expected in ("files", "emails", "validation: not started", ADMIN, "already exists"):
        assert expected in table
    with target.engine.db.transaction() as session:
        session.execute(delete(Organization))
    retried = cli_process("relocation", "retry", run_id[:12], "--json", env=env)
    assert retried.returncode == 0, retried.stderr
    new_id = json.loads(retried.stdout)["id"]
    assert json.loads(retried.stdout)["params"]["retry_of"] == run_id
    assert target.harness.run(new_id).status == "succeeded"
    again = cli_process("relocation", "retry", new_id, env=env)
    assert again.returncode == 1
    assert "is succeeded; only a failed relocation can be retried" in again.stderr
    missing = cli_process("relocation", "show", "feedface", env=env)
    assert missing.returncode == 1
    assert "no run with id 'feedface'" in missing.stderr
