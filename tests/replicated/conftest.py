"""Fixtures: one replicated stack (three Kafka nodes, a PostgreSQL primary
with a synchronous standby) for the whole run, started here and never
assumed; a test that cannot have it fails and says why."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))

from harness import session_stack  # noqa: E402


@pytest.fixture(scope="session")
def stack():
    yield from session_stack("test-replicated-stack", "the replicated stack",
                             replicated=True)
