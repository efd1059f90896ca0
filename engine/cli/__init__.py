"""The ``statewright`` command line.

Exit codes: 0 ok; 1 the operation was refused or failed, or the run failed;
2 usage error. Every read command takes ``--json`` for scripts (stdout then holds
only JSON; progress, logs and notices go to stderr).

The commands live in ``statewright.cli.app`` and the modules beside it; this package
imports nothing heavy, so ``statewright --help`` answers fast and workflow packages
can import ``statewright.cli.common`` without a cycle.
"""

from __future__ import annotations


def main() -> None:
    """Console entry point."""
    from statewright.cli.app import main as run

    run()
