"""Fixtures: one throwaway PostgreSQL + Kafka stack and one ticketd for the
whole run (started here, never assumed), and a client per test."""

import pytest

from harness import Client, Ticketd, session_stack


@pytest.fixture(scope="session")
def stack():
    # Secured: one broker with a plain and a SASL_SSL listener, one
    # PostgreSQL with ssl=on, serve the plain tests (unchanged, on the
    # plain endpoints) and test_security.py (docs/security.md says why).
    yield from session_stack("test-stack", "the test stack", secure=True)


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
