"""Failures of ticketd's own: none may give a request an answer it would
not get otherwise (issue 14's defects, each a test that failed on the code
before its fix; the publisher's are in tests/unit/test_publisher.c, against
librdkafka's mock cluster, which can fail a delivery on purpose)."""

import os
import re
import subprocess
import time

from harness import REPO, run_flood
from test_batching import metric, own_ticketd
from test_booking import book, new_event


def test_a_stored_reply_that_does_not_parse_is_never_answered_around(stack):
    """A redelivered request whose idempotency record ticketd cannot read
    back waits (and says so) instead of being answered invalid; once the
    record is readable it gets its stored reply, and ran once."""
    with own_ticketd(stack, "corrupt") as (t, c):
        event_id, (section_id,) = new_event(c)
        request = book(event_id, section_id)
        first = c.request(request)
        assert first["status"] == "confirmed", first
        (stored,) = stack.query(
            "SELECT reply FROM processed_requests WHERE idempotency_key = %s",
            (request["request_id"],))[0]
        stack.query("UPDATE processed_requests SET reply = '{not json' "
                    "WHERE idempotency_key = %s RETURNING 1",
                    (request["request_id"],))
        c.send(request)
        deadline = time.time() + 30
        while metric(t, "ticketd_local_failures_total") < 2:
            assert time.time() < deadline, t.log_tail()
            time.sleep(0.2)
        # Nothing was answered while the record could not be read.
        assert len(c.replies_for(request["request_id"], 2, timeout=1)) == 1
        assert "not a JSON object" in t.log_tail(200)
        stack.query("UPDATE processed_requests SET reply = %s "
                    "WHERE idempotency_key = %s RETURNING 1",
                    (stored, request["request_id"]))
        replies = c.replies_for(request["request_id"], 2, timeout=30)
        assert len(replies) == 2, t.log_tail()
        assert replies[1]["json"] == first
        assert stack.query("SELECT count(*) FROM bookings WHERE "
                           "request_key = %s", (request["request_id"],)) == [(1,)]


def _run_ids(output):
    return re.search(r"ticket-flood run (\S+):", output).group(1)


def test_flood_mix_sends_its_share_of_holds_over_the_whole_run(stack, ticketd):
    """--mix P makes P percent of the requests holds, spread over the run
    (it made P*P/100 percent, all at the run's start)."""
    for mix in (20, 50):
        rc, out = run_flood(stack, "--fresh-seed", "--event", "930",
                            "--section", "930", "--sections", "2",
                            "--capacity", "100000", "-n", "400", "-q", "1",
                            "-c", "100", "--mix", str(mix), "-t", "120")
        assert rc == 0, out
        run = _run_ids(out)
        rows = stack.query(
            "SELECT type, split_part(request_id, '-', 3)::int AS n "
            "FROM processed_requests WHERE request_id LIKE %s",
            ("flood-" + run + "-%",))
        holds = sorted(n for kind, n in rows if kind == "hold")
        books = [n for kind, n in rows if kind == "book"]
        assert len(holds) == 400 * mix // 100, (mix, len(holds), len(books))
        assert len(holds) + len(books) == 400
        last = max(n for _, n in rows)
        assert holds[-1] > 0.75 * last, (mix, holds[-1], last)


def test_pg_module_against_the_real_server(stack):
    """src/pg.c on its own against the stack's PostgreSQL (tests/db/):
    pipelines, their bound, and how each failure is classified."""
    binary = os.path.join(REPO, os.environ.get("TICKETD_BUILD", "build"),
                          "tests", "db", "test_pg")
    assert os.path.exists(binary), "%s is not built (make test builds it)" % binary
    proc = subprocess.run([binary], env=dict(os.environ, TICKETD_PG=stack.pg),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert "[  PASSED  ]" in output and "FAILED" not in output, output
