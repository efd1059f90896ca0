"""The hand-made hostile files in tests/data/hostile each fail with their own reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statewright.models import Organization, OrganizationMember, User
from statewright.workflows.relocation import start_relocation
from tests.workflows.conftest import OWNER, Target

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile"
MANIFEST: dict[str, str] = json.loads((CORPUS / "manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_corpus_file_fails_with_its_reason(name: str, target: Target) -> None:
    """Each hostile file ends its run failed, with the reason the manifest names; no import."""
    run = start_relocation(target.engine, CORPUS / name, owner=OWNER)
    failed = target.harness.run(run.id)
    assert failed.status == "failed", name
    assert MANIFEST[name] in (failed.failure_reason or ""), failed.failure_reason
    assert failed.attempt == 1  # a hostile file is not worth a retry
    assert target.count(Organization) == 0
    assert target.count(User) == 1
    assert target.count(OrganizationMember) == 0
