"""Hostile input, generated: broken and adversarial exports and API arguments.

Every case ends in a clear refusal or a failed run with a reason; nothing crashes a
worker and nothing is imported.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statewright import Engine, InMemoryMetrics, Settings, StatewrightError, VirtualClock, migrate
from statewright.models import Organization, User
from statewright.testing import WorkflowHarness
from statewright.workflows.relocation import Limits, Relocation, RelocationConfig, start_relocation
from statewright.workflows.relocation.format import SECTIONS, ExportError, read_records, seal
from tests.workflows.conftest import Keys

LIMITS = Limits(
    max_file_bytes=200_000,
    max_decompressed_bytes=2_000_000,
    max_orgs=5,
    max_users=50,
    max_string=200,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
tricky_text = st.sampled_from(
    [
        "",
        " ",
        "\u202eevil",
        "zero\u200bwidth",
        "nul\x00byte",
        "é" * 300,
        "a" * 5000,
        "\ud83d\ude00",
        "../../etc/passwd",
        "'; DROP TABLE users; --",
        "<script>",
        "\uff21\uff22\uff23",
    ]
)


def document() -> dict[str, Any]:
    return {
        "format": "statewright.relocation",
        "version": 1,
        "source": {"installation": "fuzz"},
        "organizations": [{"id": 1, "slug": "fuzz", "name": "Fuzz"}],
        "users": [{"id": u, "username": f"fuzz{u}", "email": f"f{u}@x.example"} for u in (1, 2)],
        "members": [{"organization_id": 1, "user_id": u, "role": "member"} for u in (1, 2)],
        "teams": [{"id": 1, "organization_id": 1, "slug": "t", "name": "T"}],
        "projects": [{"id": 1, "organization_id": 1, "slug": "p", "name": "P"}],
        "project_teams": [{"project_id": 1, "team_id": 1}],
    }


@st.composite
def hostile_exports(draw: st.DrawFn) -> bytes:
    """A good document broken in one (or several) of many ways, as bytes."""
    doc = document()
    kind = draw(
        st.sampled_from(
            [
                "value",
                "drop",
                "extra",
                "section",
                "tricky",
                "nesting",
                "duplicate",
                "truncate",
                "garbage",
                "bomb",
                "top",
                "many",
            ]
        )
    )
    if kind in ("value", "drop", "extra", "tricky"):
        section = draw(st.sampled_from(SECTIONS))
        if doc[section]:
            record = doc[section][0]
            key = draw(st.sampled_from(sorted(record)))
            if kind == "value":
                record[key] = draw(json_values)
            elif kind == "drop":
                del record[key]
            elif kind == "extra":
                record[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
            else:
                record[key] = draw(tricky_text)
    elif kind == "section":
        doc[draw(st.sampled_from([*SECTIONS, "format", "version", "source"]))] = draw(json_values)
    elif kind == "top":
        return json.dumps(draw(json_values)).encode()
    elif kind == "many":
        doc["users"] = [{"id": u, "username": f"m{u}", "email": f"m{u}@x"} for u in range(1, 60)]
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if kind == "nesting":
        depth = draw(st.integers(100, 20_000))
        raw = raw.replace(b'"Fuzz"', b"[" * depth + b"]" * depth, 1)
    elif kind == "duplicate":
        raw = raw.replace(b'{"id": 1, "slug"', b'{"id": 1, "id": 2, "slug"', 1)
    elif kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif kind == "garbage":
        raw = draw(st.binary(max_size=200))
    elif kind == "bomb":
        raw = gzip.compress(
            b'{"format": "statewright.relocation", "version": 1, "source": {"a": "'
            + b"A" * 2_100_000
            + b'"}}'
        )
    if draw(st.booleans()):
        raw = gzip.compress(raw)
    return raw


@st.composite
def tampered_ciphertexts(draw: st.DrawFn, keys: Keys) -> bytes:
    sealed = io.BytesIO()
    seal(
        io.BytesIO(json.dumps(document()).encode()),
        sealed,
        compress=draw(st.booleans()),
        public_key=keys.public_key(),
    )
    data = bytearray(sealed.getvalue())
    if draw(st.booleans()):
        position = draw(st.integers(0, len(data) - 1))
        data[position] ^= draw(st.integers(1, 255))
        return bytes(data)
    return bytes(data[: draw(st.integers(0, len(data) - 1))])


@functools.cache
def private_key(path: Path) -> Any:
    """Loaded once: checking an RSA key takes a noticeable fraction of a second."""
    from statewright.workflows.relocation.crypto import load_private_key

    return load_private_key(path.read_bytes())


def read_all(data: bytes, keys: Keys) -> list[Any]:
    return list(read_records(data, private_key(keys.private), LIMITS))


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@pytest.mark.long
@given(data=hostile_exports())
def test_reader_refuses_clearly_or_reads(data: bytes, keys: Keys) -> None:
    """The reader either reads a valid document or raises ExportError with a reason; nothing
    else escapes."""
    message = None
    try:
        read_all(data, keys)
    except ExportError as error:
        message = str(error)
    if message is not None:
        assert message.strip()
        assert len(message) < 400


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_tampered_ciphertext_is_refused(data: st.DataObject, keys: Keys) -> None:
    """A flipped byte or a cut anywhere in an encrypted export is refused, never read."""
    sealed = data.draw(tampered_ciphertexts(keys))
    with pytest.raises(ExportError):
        read_all(sealed, keys)


class Installation:
    """One embedded target for many generated relocations (built once: fixtures are per test)."""

    def __init__(self, keys: Keys) -> None:
        directory = Path(tempfile.mkdtemp(prefix="statewright-fuzz-"))
        url = f"sqlite:///{directory / 'target.db'}"
        migrate(url)
        config = RelocationConfig(
            limits=LIMITS, private_key_path=keys.private, email_backend=f"file:{directory / 'mail'}"
        )
        self.engine = Engine(
            Settings(database_url=url),
            [Relocation(config)],
            clock=VirtualClock(),
            metrics=InMemoryMetrics(),
            rng=random.Random(0),
        )
        self.harness = WorkflowHarness(self.engine)
        with self.engine.db.transaction() as session:
            session.add(User(username="owner", email="o@x.example", created_at=datetime.now(UTC)))

    def count(self, model: Any) -> int:
        from sqlalchemy import func, select

        with self.engine.db.reads() as session:
            return int(session.execute(select(func.count()).select_from(model)).scalar_one())


@pytest.fixture(scope="module")
def installation(keys: Keys) -> Installation:
    return Installation(keys)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
@pytest.mark.long
@given(data=hostile_exports())
def test_hostile_relocation_fails_with_a_reason_and_imports_nothing(
    data: bytes, installation: Installation
) -> None:
    """A generated hostile export ends in a failed run with a specific reason, imports nothing,
    and never crashes the task that ran it."""
    before = installation.count(Organization), installation.count(User)
    run = start_relocation(installation.engine, data, owner="o@x.example")
    finished = installation.harness.run(run.id)  # a task that raised would raise here
    if finished.status == "succeeded":  # the mutation happened to keep it valid
        return
    assert finished.status == "failed"
    assert finished.failure_reason
    assert "Traceback" not in finished.failure_reason
    assert (installation.count(Organization), installation.count(User)) == before


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=json_values | st.sets(st.integers(), max_size=3) | st.binary(max_size=5),
    key=st.none() | st.text(max_size=300),
    at=st.none() | tricky_text | st.text(max_size=20),
    trigger=tricky_text | st.text(max_size=20),
    run_id=tricky_text | st.text(max_size=40),
)
def test_bad_api_arguments_are_refused_clearly(
    params: Any,
    key: str | None,
    at: str | None,
    trigger: str,
    run_id: str,
    installation: Installation,
) -> None:
    """Operations with generated arguments succeed or raise a statewright error, nothing else."""
    engine = installation.engine
    for call in (
        lambda: engine.start("relocation", params, idempotency_key=key, pause_at=at),
        lambda: engine.get(run_id),
        lambda: engine.pause(run_id, at=at),
        lambda: engine.signal(run_id, trigger, params if isinstance(params, dict) else None),
        lambda: engine.list(status=at),
    ):
        message = None
        try:
            call()
        except StatewrightError as error:
            message = str(error)
        assert message is None or message.strip()
