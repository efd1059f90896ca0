"""The chaos suite uses the real-process cluster of the integration tests."""

from tests.integration.conftest import _remove_session_queues, make_cluster  # noqa: F401
