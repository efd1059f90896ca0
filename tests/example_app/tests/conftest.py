"""The workflows under test, for statewright's pytest fixtures."""

import pytest

from workflows import LoanApplication


@pytest.fixture
def statewright_workflows() -> list[LoanApplication]:
    return [LoanApplication()]
