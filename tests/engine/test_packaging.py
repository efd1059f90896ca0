"""The wheel is the product: it installs under one import name and works with no checkout."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PIP_INSTALL = (sys.executable, "-m", "pip", "install", "--quiet", "--no-deps")


def package_folders() -> dict[str, str]:
    """Every folder holding Python modules under a mapped folder, by its import name."""
    found: dict[str, str] = {}
    for package, folder in SETUPTOOLS["package-dir"].items():
        base = ROOT / folder
        for path in [base, *sorted(p for p in base.rglob("*") if p.is_dir())]:
            if "__pycache__" in path.parts or not any(path.glob("*.py")):
                continue
            relative = path.relative_to(base).parts
            found[".".join((package, *relative))] = str(path.relative_to(ROOT))
    return found


def test_every_package_folder_is_listed() -> None:
    """A folder of modules missing from pyproject's package list would be left out of the wheel."""
    missing = sorted(set(package_folders()) - set(SETUPTOOLS["packages"]))
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    source = tmp_path_factory.mktemp("source")
    known = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in known:  # only what git knows: a local build/ must not leak into the wheel
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("statewright-*.whl")
    return built


def test_wheel_holds_one_import_name_and_the_migrations(wheel: Path) -> None:
    """The wheel installs only `statewright`, with its migrations, templates and py.typed."""
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.startswith("statewright-")}
    assert top == {"statewright"}
    for expected in (
        "statewright/migrations/env.py",
        "statewright/migrations/script.py.mako",
        "statewright/migrations/versions/0001_engine_tables.py",
        "statewright/models/__init__.py",
        "statewright/workflows/relocation/__init__.py",
        "statewright/py.typed",
    ):
        assert expected in names
    assert any(name.startswith("statewright/console/templates/") for name in names)
    for folder in ("templates", "static"):  # every file the console serves
        for path in (ROOT / "engine" / "console" / folder).iterdir():
            if path.is_file():
                assert f"statewright/console/{folder}/{path.name}" in names


def test_installed_wheel_migrates_and_runs_without_a_checkout(wheel: Path, tmp_path: Path) -> None:
    """Installed elsewhere, `statewright migrate` makes the schema and the CLI answers."""
    site = tmp_path / "site"
    subprocess.run(
        [*PIP_INSTALL, "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "app"
    elsewhere.mkdir()
    database = elsewhere / "app.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STATEWRIGHT_")},
        "PYTHONPATH": str(site),
        "STATEWRIGHT_DATABASE_URL": f"sqlite:///{database}",
    }
    script = (
        "import sys, statewright; "
        "from statewright.cli import main; "
        "print(statewright.__file__); "
        "sys.argv = ['statewright', *sys.argv[1:]]; main()"
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    migrated = cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.splitlines()[0].startswith(str(site))
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"workflow_runs", "alembic_version"} <= tables
    listed = cli("runs", "list")
    assert listed.returncode == 0, listed.stderr
