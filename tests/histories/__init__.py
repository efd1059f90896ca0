"""Recorded relocation histories, replayed in CI.

Regenerate with ``python -m tests.histories.record``.
"""
