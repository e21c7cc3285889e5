"""Fixtures: one throwaway PostgreSQL + Kafka stack and one ticketd for the
whole run (started here, never assumed), and a client per test."""

import os
import shutil

import pytest

from harness import REPO, Client, Stack, Ticketd


@pytest.fixture(scope="session")
def stack():
    state_dir = os.path.join(REPO, "build", "test-stack")
    shutil.rmtree(state_dir, ignore_errors=True)
    os.makedirs(state_dir)
    # Secured: one broker with a plain and a SASL_SSL listener, one
    # PostgreSQL with ssl=on, serve the plain tests (unchanged, on the
    # plain endpoints) and test_security.py (docs/security.md says why).
    s = Stack(state_dir, secure=True)
    try:
        s.up()
    except Exception as e:
        # A system test never skips: no stack is a failure, said loudly.
        try:
            s.down()
        finally:
            pytest.fail("cannot start the test stack: %s" % e, pytrace=False)
    yield s
    s.down()


@pytest.fixture(scope="session")
def ticketd(stack):
    t = Ticketd(stack)
    try:
        t.start()
    except Exception as e:
        t.stop()
        pytest.fail(str(e), pytrace=False)
    yield t
    code = t.stop()
    assert code == 0, "ticketd exited %s at the end of the run:\n%s" % (code, t.log_tail())


@pytest.fixture
def client(stack, ticketd):
    c = Client(stack)
    yield c
    c.close()
