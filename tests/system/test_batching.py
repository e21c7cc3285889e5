"""Batching: many requests in one transaction, each with the outcome it
would get alone (issue 5). Not a timing test: the section row is held
locked so that the requests queue up and are taken as one batch."""

import contextlib
import json
import time

import psycopg2

from harness import (Client, Ticketd, duplicate_executions, fresh_database,
                     invariant_violations, pg_execute, run_flood, unique)
from test_booking import book, new_event
from test_holds import hold, simple


def metric(t, name):
    """One counter of t's /metrics."""
    status, text = t.http("/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in /metrics (HTTP %s)" % (name, status))


def batch_histogram(t):
    status, text = t.http("/metrics")
    counts = {}
    for line in text.splitlines():
        if line.startswith("ticketd_batch_size_bucket"):
            le = line.split('le="')[1].split('"')[0]
            counts[le] = int(line.rsplit(" ", 1)[1])
    return counts


@contextlib.contextmanager
def own_ticketd(stack, name, **settings):
    """A ticketd on a topic of its own with one partition (so that what is
    sent queues for its workers in order), and a client for that topic;
    ticketd must exit 0 at the end."""
    topic = "requests-" + unique(name)
    stack.create_topic(topic, partitions=1)
    t = Ticketd(stack, name="ticketd-" + name, request_topic=topic,
                group_id=name + "-" + unique("g"), **settings).start()
    c = None
    try:
        c = Client(stack, request_topic=topic)
        yield t, c
    except BaseException:
        if c:
            c.close()
        t.stop()
        raise
    c.close()
    assert t.stop() == 0, t.log_tail()


@contextlib.contextmanager
def holding(stack, statement, params=()):
    """A session that ran statement (taking its locks, or writing without
    committing) until the block ends, then rolls back."""
    conn = psycopg2.connect(stack.pg)
    try:
        conn.cursor().execute(statement, params)
        yield
    finally:
        conn.rollback()
        conn.close()


def test_mixed_batch_gives_each_request_its_own_outcome(stack):
    with own_ticketd(stack, "batch", workers=1) as (t, c):
        event_id, (section_id,) = new_event(c, capacity=5)
        first = book(event_id, section_id, 2, rid=unique("b1"))
        requests = [
            (first, "confirmed", None, 3),
            (book(event_id, section_id, 4), "rejected", "INSUFFICIENT_SEATS", 3),
            (first, "confirmed", None, 3),                       # duplicate: replayed
            (dict(first, quantity=1, request_id=first["request_id"]),
             "rejected", "IDEMPOTENCY_CONFLICT", None),
            (dict(book(event_id, section_id, 1), quantity=0), "invalid", "INVALID_FIELD", None),
            (book(event_id, section_id, 3), "confirmed", None, 0),
            (book(event_id, section_id, 1), "rejected", "INSUFFICIENT_SEATS", 0),
            (book(event_id, 424242, 1), "rejected", "SECTION_NOT_FOUND", None),
        ]
        before = batch_histogram(t)
        # Hold the section so that everything queues behind one lock.
        correlations = []
        with holding(stack, "SELECT 1 FROM sections WHERE id = %s FOR UPDATE", (section_id,)):
            for i, (req, _, _, _) in enumerate(requests):
                cid = ("%s-%d" % (unique("corr"), i)).encode()
                correlations.append(cid)
                c.send(req, key=str(section_id), correlation=cid)
            time.sleep(2)
        for cid, (req, status, code, remaining) in zip(correlations, requests):
            found = c.wait_for(lambda r, cid=cid: r["headers"].get("kafka_correlationId") == cid)
            assert found, req
            reply = found[0]["json"]
            assert reply["status"] == status, (req, reply)
            if code:
                assert reply["error"]["code"] == code, (req, reply)
            if remaining is not None:
                assert reply["remaining"] == remaining, (req, reply)
        # The first and its duplicate got the same booking.
        replies = c.replies_for(first["request_id"], count=3)
        booking_ids = {r["json"].get("booking_id") for r in replies if r["json"]["status"] == "confirmed"}
        assert len(booking_ids) == 1
        after = batch_histogram(t)
        # At least one transaction carried more than one request.
        assert after["+Inf"] - after["1"] > before["+Inf"] - before["1"], (before, after)
        assert stack.query("SELECT remaining FROM sections WHERE id = %s", (section_id,)) == [(0,)]
        assert stack.query("SELECT count(*), sum(quantity) FROM bookings WHERE section_id = %s",
                           (section_id,)) == [(2, 5)]
        assert invariant_violations(stack) == [] and duplicate_executions(stack) == []


def test_idempotency_lookup_stays_an_index_probe_as_a_fresh_table_grows(stack):
    """A new database: statistics taken while processed_requests was empty,
    and no ANALYZE since (autovacuum off for it, as in a deployment's first
    minute). The worker's lookup plan, cached over the first batches, must
    still find each key through the primary key once the table has grown,
    not read the table once per key."""
    with fresh_database(stack) as fresh:
        pg_execute(fresh, "ALTER TABLE processed_requests SET (autovacuum_enabled = false)")
        pg_execute(fresh, "ANALYZE processed_requests")
        topic = "requests-" + unique("fresh")
        stack.create_topic(topic, partitions=1)
        t = Ticketd(stack, name="ticketd-fresh", request_topic=topic, pg=fresh,
                    group_id="fresh-" + unique("g"), workers=1)
        where = ["--request-topic", topic, "--event", "700", "--section", "7000",
                 "-q", "1", "-t", "120"]
        try:
            t.start()
            # Many small batches while the table is a few pages: past the
            # five executions after which PostgreSQL may cache a generic plan.
            code, out = run_flood(stack, *where, "--fresh-seed", "--capacity", "100000",
                                  "-n", "200", "-c", "2", pg=fresh)
            assert code == 0, out
            for relation in ("processed_requests", "processed_requests_pkey"):
                pg_execute(fresh, "SELECT pg_stat_reset_single_table_counters(%s::regclass)",
                           (relation,))
            code, out = run_flood(stack, *where, "-n", "3000", "-c", "100", pg=fresh)
            assert code == 0, out
        finally:
            exit_code = t.stop()
        assert exit_code == 0, t.log_tail()
        # A backend hands in its counters when it exits; ticketd's have.
        deadline = time.time() + 30
        while True:
            (seq,), = pg_execute(fresh, "SELECT seq_scan FROM pg_stat_user_tables"
                                        " WHERE relname = 'processed_requests'")
            (probes,), = pg_execute(fresh, "SELECT idx_scan FROM pg_stat_user_indexes"
                                           " WHERE indexrelname = 'processed_requests_pkey'")
            if probes >= 3000 or time.time() > deadline:
                break
            time.sleep(0.5)
        assert pg_execute(fresh, "SELECT count(*) FROM processed_requests") == [(3200,)]
        assert (seq, probes >= 3000) == (0, True), (seq, probes)


def test_per_customer_limit_in_one_batch_as_if_alone(stack):
    """max_per_customer inside one batch: each request sees the seats the
    ones before it took or gave back (a release, a cancel), as it would in
    a transaction of its own; an expired hold counts for nothing; the limit
    is per event."""
    with own_ticketd(stack, "climit", workers=1, max_per_customer=4) as (t, c):
        event_id, (section_id,) = new_event(c, capacity=100)
        other_event, (other_section,) = new_event(c, capacity=100)
        carol = "carol-%s@example.com" % unique("c")
        expiring = c.request(hold(event_id, section_id, 3, ttl_s=1, customer=carol))
        assert expiring["status"] == "held", expiring
        time.sleep(1.5)
        booked = c.request(book(event_id, section_id, 1, customer=carol))
        held = c.request(hold(event_id, section_id, 2, ttl_s=600, customer=carol))
        assert (booked["status"], held["status"]) == ("confirmed", "held")
        # carol has 3 of her 4 seats for the event before the batch.
        requests = [
            (book(event_id, section_id, 2, customer=carol), "rejected", "QUANTITY_LIMIT"),
            (book(event_id, section_id, 1, customer=carol), "confirmed", None),   # 4
            (book(event_id, section_id, 4, customer="dave-" + carol), "confirmed", None),
            (simple("release", hold_id=held["hold_id"]), "ok", None),            # 2
            (book(event_id, section_id, 2, customer=carol), "confirmed", None),   # 4
            (simple("cancel", booking_id=booked["booking_id"]), "ok", None),     # 3
            (hold(event_id, section_id, 1, ttl_s=600, customer=carol), "held", None),  # 4
            (book(event_id, section_id, 1, customer=carol), "rejected", "QUANTITY_LIMIT"),
            (book(other_event, other_section, 4, customer=carol), "confirmed", None),
        ]
        before = batch_histogram(t)
        with holding(stack, "SELECT 1 FROM sections WHERE id = %s FOR UPDATE", (section_id,)):
            for req, _, _ in requests:
                c.send(req, key=str(section_id))
            time.sleep(2)
        for req, status, code in requests:
            reply = c.reply(req["request_id"])
            assert reply["status"] == status, (req, reply)
            if code:
                assert reply["error"]["code"] == code, (req, reply)
        # The first may have gone alone; the rest were one batch.
        after = batch_histogram(t)
        assert after["+Inf"] - after["5"] > before["+Inf"] - before["5"], (before, after)
        seats = stack.query(
            "SELECT (SELECT coalesce(sum(quantity), 0) FROM bookings WHERE event_id = %s"
            " AND customer = %s AND status = 'confirmed')"
            " + (SELECT coalesce(sum(quantity), 0) FROM holds WHERE event_id = %s"
            " AND customer = %s AND status = 'active' AND expires_at > now())",
            (event_id, carol, event_id, carol))
        assert seats == [(4,)]
        assert invariant_violations(stack) == [] and duplicate_executions(stack) == []


def worker_of(key, workers):
    """The worker a message key is routed to: FNV-1a of the key, as
    src/worker.c does (stable across processes by design)."""
    h = 2166136261
    for byte in key.encode():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h % workers


def until(condition, timeout=30):
    """Poll condition until it holds (True) or timeout seconds pass."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def waiting_sessions(stack, lock):
    """How many ticketd sessions wait for a lock of that kind."""
    return stack.query("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'ticketd%%'"
                       " AND wait_event_type = 'Lock' AND wait_event = %s", (lock,))[0][0]


def ticketd_waits_on(stack, lock):
    """Whether a ticketd session waits for a lock of that kind."""
    return waiting_sessions(stack, lock) > 0


def keys_of_two_workers():
    """Two message keys that ticketd with 2 workers routes apart."""
    keys = ["k%d" % i for i in range(16)]
    return keys[0], next(k for k in keys if worker_of(k, 2) != worker_of(keys[0], 2))


def record_held(stack, request):
    """A session holds request's idempotency record written, uncommitted:
    the batch that runs it waits there, after deciding, until the block
    ends."""
    return holding(stack, "INSERT INTO processed_requests (idempotency_key, request_id, type,"
                          " fingerprint, status, reply) VALUES (%s, %s, %s, '-', '-', '{}')",
                   (request["request_id"], request["request_id"], request["type"]))


def ran_or_waits_for_customer(stack, client, request):
    """request was answered, or a ticketd session waits for a customer lock."""
    return until(lambda: ticketd_waits_on(stack, "advisory")
                 or client.replies_for(request["request_id"], 1, timeout=0.2))


def test_per_customer_limit_holds_across_workers(stack):
    """One customer booked into two sections of an event by two workers at
    once: the second decides only after the first committed, so the limit
    holds. The first worker is kept from committing (a session holds its
    idempotency key uncommitted) while the second runs."""
    with own_ticketd(stack, "race", workers=2, max_per_customer=4) as (t, c):
        event_id, (first, second) = new_event(c, capacity=100, sections=2)
        key_a, key_b = keys_of_two_workers()
        dana = "dana-%s@example.com" % unique("d")
        a = book(event_id, first, 3, customer=dana)
        b = book(event_id, second, 3, customer=dana)
        with record_held(stack, a):
            c.send(a, key=key_a)
            # a has read dana's seats and waits to write its record ...
            assert until(lambda: ticketd_waits_on(stack, "transactionid")), "a never blocked"
            c.send(b, key=key_b)
            # ... while b waits for a's customer lock (or, unlocked, answers).
            assert ran_or_waits_for_customer(stack, c, b), "b neither ran nor waited"
        reply_a, reply_b = c.reply(a["request_id"]), c.reply(b["request_id"])
        assert reply_a["status"] == "confirmed", reply_a
        assert (reply_b["status"], reply_b.get("error", {}).get("code")) == \
            ("rejected", "QUANTITY_LIMIT"), reply_b
        assert stack.query("SELECT coalesce(sum(quantity), 0) FROM bookings WHERE event_id = %s"
                           " AND customer = %s", (event_id, dana)) == [(3,)]
        assert invariant_violations(stack) == [] and duplicate_executions(stack) == []


def test_batch_past_the_customer_lock_bound_runs_in_halves(stack):
    """A batch whose customers would need more advisory locks than one
    batch may take (256: 5 events x 64 customers = 320) is split, not
    refused: every request gets its outcome."""
    with own_ticketd(stack, "locks", workers=1, max_per_customer=4) as (t, c):
        events = [new_event(c, capacity=1000) for _ in range(5)]
        requests = [book(event_id, section_id, 1, customer="u%d-%s" % (i, unique("u")))
                    for event_id, (section_id,) in events for i in range(64)]
        splits = metric(t, "ticketd_batch_splits_total")
        # A first request takes the worker into the locked sections; the
        # rest queue behind it, to be taken as one batch.
        plug = book(events[0][0], events[0][1][0], 1, customer="plug-" + unique("p"))
        with holding(stack, "SELECT 1 FROM sections WHERE id = ANY(%s) FOR UPDATE",
                     ([section_id for _, (section_id,) in events],)):
            c.send(plug, key="locks")
            assert until(lambda: ticketd_waits_on(stack, "transactionid")), "no batch blocked"
            for req in requests:
                c.send(req, key="locks")
            time.sleep(1)
        assert c.reply(plug["request_id"])["status"] == "confirmed"
        for req in requests:
            assert c.reply(req["request_id"])["status"] == "confirmed", req
        assert metric(t, "ticketd_batch_splits_total") > splits
        assert invariant_violations(stack) == [] and duplicate_executions(stack) == []


def seconds_left(stack, hold_id):
    return stack.query("SELECT extract(epoch FROM expires_at - now()) FROM holds WHERE id = %s",
                       (hold_id,))[0][0]


def hold_and_rivals(c, name):
    """A 3-seat hold of 4 s for a new customer in the first of two sections,
    a confirm of it, and a 3-seat book of hers in the second section; and
    two keys that route to different workers. Her limit is 4."""
    event_id, (first, second) = new_event(c, capacity=100, sections=2)
    key_a, key_b = keys_of_two_workers()
    customer = "%s@example.com" % unique(name)
    held = c.request(hold(event_id, first, 3, ttl_s=4, customer=customer), key=key_a)
    assert held["status"] == "held", held
    return (event_id, first, customer, held, simple("confirm", hold_id=held["hold_id"]),
            book(event_id, second, 3, customer=customer), key_a, key_b)


def test_confirm_racing_its_expiry_cannot_pass_the_limit(stack):
    """A confirm that started while its hold was live, and a book of the
    same customer in another section after the hold's time is up: one
    decides after the other committed, by a clock read after the wait, so
    the customer never ends over the limit. The confirm is kept from
    committing (its record held uncommitted) past the hold's expiry."""
    with own_ticketd(stack, "expiry", workers=2, max_per_customer=4) as (t, c):
        event_id, _, erin, held, confirm, again, key_a, key_b = hold_and_rivals(c, "erin")
        with record_held(stack, confirm):
            c.send(confirm, key=key_a)
            assert until(lambda: ticketd_waits_on(stack, "transactionid")), "confirm never blocked"
            expires = float(seconds_left(stack, held["hold_id"]))
            assert expires > 0, "the confirm blocked only after the hold expired"
            time.sleep(expires + 0.5)   # the hold's time is up
            c.send(again, key=key_b)
            assert ran_or_waits_for_customer(stack, c, again), "the book neither ran nor waited"
        confirmed = c.reply(confirm["request_id"])
        booked = c.reply(again["request_id"])
        seats = stack.query("SELECT coalesce(sum(quantity), 0) FROM bookings WHERE event_id = %s"
                            " AND customer = %s AND status = 'confirmed'", (event_id, erin))
        assert confirmed["status"] == "ok", confirmed
        assert (booked["status"], booked.get("error", {}).get("code")) == \
            ("rejected", "QUANTITY_LIMIT"), booked
        assert seats == [(3,)]
        assert invariant_violations(stack) == [] and duplicate_executions(stack) == []


def test_confirm_begun_before_expiry_waits_and_finds_it_expired(stack):
    """The other order: a confirm begins while its hold is live but waits
    (behind its section) until after the hold's time is up, and a book of
    the same customer in another section, which judged the hold expired,
    holds her lock meanwhile. The confirm then decides by the clock after
    its wait: the hold has expired, and she never ends over the limit."""
    with own_ticketd(stack, "expiry2", workers=2, max_per_customer=4) as (t, c):
        event_id, first, fay, held, confirm, again, key_a, key_b = hold_and_rivals(c, "fay")
        with record_held(stack, again):
            with holding(stack, "SELECT 1 FROM sections WHERE id = %s FOR UPDATE", (first,)):
                c.send(confirm, key=key_a)
                assert until(lambda: ticketd_waits_on(stack, "transactionid")), \
                    "the confirm never blocked"
                expires = float(seconds_left(stack, held["hold_id"]))
                assert expires > 0, "the confirm began only after the hold expired"
                time.sleep(expires + 0.5)   # the hold's time is up
                # The book judges the hold expired, takes fay's lock and
                # waits to write its record.
                c.send(again, key=key_b)
                assert until(lambda: waiting_sessions(stack, "transactionid") >= 2), \
                    "the book never blocked"
            # The section is free: the confirm now waits for fay's lock.
            assert until(lambda: ticketd_waits_on(stack, "advisory")), \
                "the confirm never waited for the customer lock"
        booked = c.reply(again["request_id"])
        confirmed = c.reply(confirm["request_id"])
        assert booked["status"] == "confirmed", booked
        assert (confirmed["status"], confirmed.get("error", {}).get("code")) == \
            ("rejected", "HOLD_EXPIRED"), confirmed
        seats = stack.query("SELECT coalesce(sum(quantity), 0) FROM bookings WHERE event_id = %s"
                            " AND customer = %s AND status = 'confirmed'", (event_id, fay))
        assert seats == [(3,)]
        assert invariant_violations(stack) == [] and duplicate_executions(stack) == []
