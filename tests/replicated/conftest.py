"""Fixtures: one replicated stack (three Kafka nodes, a PostgreSQL primary
with a synchronous standby) for the whole run, started here and never
assumed; a test that cannot have it fails and says why."""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))

from harness import REPO, Stack  # noqa: E402


@pytest.fixture(scope="session")
def stack():
    state_dir = os.path.join(REPO, "build", "test-replicated-stack")
    shutil.rmtree(state_dir, ignore_errors=True)
    os.makedirs(state_dir)
    s = Stack(state_dir, replicated=True)
    try:
        s.up()
    except Exception as e:
        try:
            s.down()
        finally:
            pytest.fail("cannot start the replicated stack: %s" % e, pytrace=False)
    yield s
    s.down()
