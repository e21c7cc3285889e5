"""Availability at flash-sale scale (issue 13): the sections' held counter
stays equal to the sums, an existing database migrates to it, the
compacted availability topic gives every section's state as the database
has it, the read cache serves many readers with one query, and idle
connections cannot starve the endpoint."""

import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request

import psycopg2
from confluent_kafka import Consumer, TopicPartition

from contract import contract

from harness import (REPO, Client, Ticketd, fresh_database, invariant_violations,
                     pg_execute, run_flood, unique)
from test_batching import metric, own_ticketd
from test_booking import book, new_event

AVAILABILITY = "bookings.availability"


def counters_match_sums(stack, first, last):
    """Every section in [first, last]: held and booked counters against the
    holds and bookings themselves. Returns the sections that differ."""
    return stack.query(
        "SELECT s.id, s.held, coalesce(h.seats, 0), "
        "       s.capacity - s.remaining - s.held, coalesce(b.seats, 0) "
        "FROM sections s "
        "LEFT JOIN (SELECT section_id, sum(quantity) AS seats FROM holds "
        "           WHERE status = 'active' GROUP BY section_id) h "
        "  ON h.section_id = s.id "
        "LEFT JOIN (SELECT section_id, sum(quantity) AS seats FROM bookings "
        "           WHERE status = 'confirmed' GROUP BY section_id) b "
        "  ON b.section_id = s.id "
        "WHERE s.id BETWEEN %s AND %s AND (s.held <> coalesce(h.seats, 0) "
        "  OR s.capacity - s.remaining - s.held <> coalesce(b.seats, 0))",
        (first, last))


def test_counters_stay_equal_to_the_sums_through_expiry_kill_and_restart(stack):
    """Holds that expire (ended by the batches that need their seats, or by
    the reaper), confirms, releases and cancels, a kill -9 mid-flood and a
    restart: held and booked counters equal the sums on every section
    afterwards."""
    topic = "counters-" + unique("t")
    stack.create_topic(topic, partitions=4)
    settings = dict(request_topic=topic, group_id=unique("counters"),
                    reaper_interval_ms=100)
    first = Ticketd(stack, name="counters-1", **settings).start()
    client = Client(stack, request_topic=topic)
    env = dict(os.environ, TICKETD_BROKERS=stack.brokers, TICKETD_PG=stack.pg)
    args = [os.path.join(REPO, "ticket-flood"), "--quiet", "--request-topic", topic,
            "--event", "960", "--section", "960", "--sections", "4",
            # Few seats: books find them taken by holds and reclaim the
            # expired ones.
            "--capacity", "60", "-q", "1", "-t", "240"]
    second = None
    try:
        assert subprocess.run(args + ["--fresh-seed", "-n", "1", "--no-verify"],
                              env=env, capture_output=True).returncode == 0
        # Holds nobody confirms: they expire during the flood.
        for i in range(8):
            reply = client.request({
                "type": "hold", "request_id": unique("lapse"), "event_id": 960,
                "section_id": 960 + i % 4, "quantity": 2, "customer": "lapse",
                "ttl_s": 1})
            assert reply["status"] == "held", reply
        flood = subprocess.Popen(args + ["-n", "3000", "-c", "300", "--rate", "600",
                                         "--mix", "50", "--ttl", "1"],
                                 env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        time.sleep(2.5)
        first.kill()
        second = Ticketd(stack, name="counters-2", **settings).start()
        out, _ = flood.communicate(timeout=300)
        # And one for the reaper alone: a section whose only hold is past
        # its time.
        stack.query("INSERT INTO sections (id, event_id, name, capacity, remaining, "
                    "held) VALUES (964, 960, 's964', 5, 4, 1) ON CONFLICT (id) DO "
                    "UPDATE SET capacity = 5, remaining = 4, held = 1 RETURNING 1")
        stack.query("INSERT INTO holds (event_id, section_id, quantity, customer, "
                    "expires_at, request_key) VALUES (960, 964, 1, 'late', "
                    "now() - interval '1 second', %s) RETURNING 1", (unique("late"),))
        deadline = time.time() + 30
        while stack.query("SELECT count(*) FROM holds WHERE section_id "
                          "BETWEEN 960 AND 964 AND status = 'active'")[0][0]:
            assert time.time() < deadline, "holds not reaped"
            time.sleep(0.2)
        reaped = metric(second, "ticketd_holds_reaped_total")
        assert second.stop() == 0, second.log_tail()
    finally:
        client.close()
        first.stop()
        if second:
            second.stop()
    assert "no reply              0" in out, out
    expired = stack.query("SELECT count(*) FROM holds WHERE section_id BETWEEN "
                          "960 AND 964 AND status = 'expired'")[0][0]
    assert expired >= 9 and reaped >= 1, (expired, reaped)
    assert stack.query("SELECT remaining, held FROM sections WHERE id = 964") == [(5, 0)]
    assert counters_match_sums(stack, 960, 964) == []
    assert invariant_violations(stack) == []


def make_old_database(conninfo):
    """The current schema, then as a database made before 2026-12-01 looks:
    no held counter, no version (the views that read them go too)."""
    conn = psycopg2.connect(conninfo)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP VIEW section_invariant")
        cur.execute("ALTER TABLE sections DROP COLUMN held, DROP COLUMN version")
        cur.execute("INSERT INTO events (id, name) VALUES (5, 'old') ")
        cur.execute("INSERT INTO sections (id, event_id, name, capacity, remaining) "
                    "SELECT s, 5, 's' || s, 100, 100 - 3 * 4 - 2 * 3 "
                    "FROM generate_series(50, 59) s")
        # Per section: four live holds of 3 seats, three bookings of 2,
        # and ended holds that count for nothing.
        cur.execute("INSERT INTO holds (event_id, section_id, quantity, customer, "
                    "status, expires_at, request_key) "
                    "SELECT 5, s, 3, 'c' || k, 'active', now() + interval '1 hour', "
                    "'old-h-' || s || '-' || k "
                    "FROM generate_series(50, 59) s, generate_series(1, 4) k")
        cur.execute("INSERT INTO holds (event_id, section_id, quantity, customer, "
                    "status, expires_at, request_key) "
                    "SELECT 5, s, 7, 'gone', 'released', now(), 'old-r-' || s "
                    "FROM generate_series(50, 59) s")
        cur.execute("INSERT INTO bookings (event_id, section_id, quantity, customer, "
                    "request_key) SELECT 5, s, 2, 'b' || k, 'old-b-' || s || '-' || k "
                    "FROM generate_series(50, 59) s, generate_series(1, 3) k")
    conn.close()


def psql(conninfo, path):
    return subprocess.run(["psql", conninfo, "-v", "ON_ERROR_STOP=1", "-q", "-f",
                           os.path.join(REPO, "db", path)],
                          capture_output=True, text=True)


def test_migration_on_a_database_with_existing_holds(stack):
    """db/migrate-2026-12-01a.sql adds the columns, a current ticketd runs
    on them, db/migrate-2026-12-01b.sql counts every section's holds under
    its lock and adds the constraints; db/schema.sql again for the views.
    Step b refuses to run while an older ticketd is connected."""
    with fresh_database(stack) as conninfo:
        make_old_database(conninfo)
        step_a = psql(conninfo, "migrate-2026-12-01a.sql")
        assert step_a.returncode == 0, step_a.stderr
        assert psql(conninfo, "migrate-2026-12-01a.sql").returncode == 0

        older = psycopg2.connect(conninfo, application_name="ticketd")
        refused = psql(conninfo, "migrate-2026-12-01b.sql")
        older.close()
        assert refused.returncode != 0
        assert "older than 2026-12-01 is connected" in refused.stderr

        # A current ticketd takes holds and releases them meanwhile.
        topic = "migrate-" + unique("t")
        stack.create_topic(topic, partitions=1)
        t = Ticketd(stack, name="migrate", request_topic=topic, pg=conninfo,
                    group_id=unique("migrate")).start()
        rc, out = run_flood(stack, "--request-topic", topic, "--event", "5",
                            "--section", "50", "--sections", "10", "-n", "200",
                            "-q", "1", "-c", "50", "--mix", "40", "--ttl", "600",
                            "--no-verify", "-t", "120", pg=conninfo)
        assert rc == 0, out
        held_before = pg_execute(conninfo, "SELECT sum(held) FROM sections")[0][0]

        started = time.time()
        step_b = psql(conninfo, "migrate-2026-12-01b.sql")
        took = time.time() - started
        assert step_b.returncode == 0, step_b.stderr
        assert t.stop() == 0, t.log_tail()
        schema = psql(conninfo, "schema.sql")
        assert schema.returncode == 0, schema.stderr
        assert psql(conninfo, "migrate-2026-12-01b.sql").returncode == 0
        print("migration: step b took %.2f s for 10 sections" % took)

        wrong = pg_execute(conninfo, "SELECT * FROM section_invariant WHERE NOT ok")
        assert wrong == []
        counted = pg_execute(conninfo, "SELECT sum(held) FROM sections")[0][0]
        live = pg_execute(conninfo, "SELECT sum(quantity) FROM holds "
                                    "WHERE status = 'active'")[0][0]
        assert counted == live and live >= 10 * 4 * 3
        # The counter ticketd kept before step b started from 0, not from
        # the old holds: step b is what made it right.
        assert held_before < live
        valid = pg_execute(conninfo,
                           "SELECT conname, convalidated FROM pg_constraint "
                           "WHERE conname LIKE %s ORDER BY 1", ("sections_held%",))
        assert valid == [("sections_held_le_taken", True),
                         ("sections_held_nonnegative", True)]


def read_availability(stack, timeout=30, settle=3):
    """Every message of the availability topic, from the beginning, in each
    partition's order, until none arrives for `settle` seconds."""
    consumer = Consumer({"bootstrap.servers": stack.brokers,
                         "group.id": unique("availability-reader"),
                         "enable.auto.commit": False})
    md = consumer.list_topics(AVAILABILITY, timeout=30)
    consumer.assign([TopicPartition(AVAILABILITY, p, 0)
                     for p in md.topics[AVAILABILITY].partitions])
    messages = []
    deadline = time.time() + timeout
    quiet_since = time.time()
    try:
        while time.time() < deadline and time.time() - quiet_since < settle:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            quiet_since = time.time()
            errors = contract().availability_errors(msg.value())
            assert not errors, "breaks docs/asyncapi.yaml: %r %s" % (msg.value(), errors)
            messages.append((msg.partition(), msg.key(), json.loads(msg.value())))
    finally:
        consumer.close()
    return messages


def test_the_availability_topic_gives_the_database_state(stack, ticketd):
    """After a mixed flood (and the reaper), the compacted topic read from
    the beginning gives, for every section, the database's remaining and
    held at its highest version; no reader ever sees a version go down."""
    rc, out = run_flood(stack, "--fresh-seed", "--event", "970", "--section", "970",
                        "--sections", "5", "--capacity", "40", "-n", "600", "-q", "1",
                        "-c", "100", "--mix", "50", "--ttl", "1", "-t", "120")
    assert rc == 0, out
    deadline = time.time() + 30
    while stack.query("SELECT count(*) FROM holds WHERE section_id BETWEEN 970 "
                      "AND 974 AND status = 'active'")[0][0]:
        assert time.time() < deadline, "holds not reaped"
        time.sleep(0.2)
    time.sleep(1)
    messages = read_availability(stack)
    latest, seen = {}, {}
    for partition, key, state in messages:
        section = state["section_id"]
        assert key == str(section).encode()
        assert set(state) == {"event_id", "section_id", "capacity", "remaining",
                              "held", "version", "at"}
        if section in seen:
            assert seen[section][0] == partition, "a section moved partition"
            assert state["version"] >= seen[section][1], \
                "section %d went from version %d to %d" % (
                    section, seen[section][1], state["version"])
        seen[section] = (partition, state["version"])
        if state["version"] >= latest.get(section, {"version": -1})["version"]:
            latest[section] = state
    rows = stack.query("SELECT id, event_id, capacity, remaining, held, version "
                       "FROM sections WHERE id BETWEEN 970 AND 974")
    assert len(rows) == 5
    for section, event_id, capacity, remaining, held, version in rows:
        state = latest.get(section)
        assert state, "section %d never published" % section
        assert (state["event_id"], state["capacity"], state["remaining"],
                state["held"], state["version"]) == (
                    event_id, capacity, remaining, held, version), (section, state)
    assert metric(ticketd, "ticketd_availability_published_total") > 0


def http_get(port, path, headers=None, timeout=10):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, hdrs, body = resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        status, hdrs, body = e.code, dict(e.headers), e.read().decode()
    errors = contract().http_errors("GET", path, status, hdrs, body)
    assert not errors, "GET %s -> %d breaks docs/openapi.yaml: %s" % (path, status, errors)
    return status, hdrs, body


def test_the_read_cache(stack):
    """Many readers at once cost one query, two reads within the interval
    one; a read after the interval sees the new state; If-None-Match gets
    304; the answers carry ETag, Age and Cache-Control."""
    with own_ticketd(stack, "cache", http_cache_ms=5000) as (t, c):
        event_id, (section_id,) = new_event(c, capacity=10)
        path = "/events/%d" % event_id
        misses = metric(t, "ticketd_http_cache_misses_total")
        answers = []
        readers = [threading.Thread(target=lambda: answers.append(
            http_get(t.http_port, path))) for _ in range(16)]
        started = time.monotonic()
        for th in readers:
            th.start()
        for th in readers:
            th.join()
        assert metric(t, "ticketd_http_cache_misses_total") == misses + 1
        assert len(answers) == 16 and {a[0] for a in answers} == {200}
        assert len({a[2] for a in answers}) == 1

        status, headers, body = http_get(t.http_port, path)
        assert status == 200 and body == answers[0][2]
        assert headers["Cache-Control"] == "public, max-age=5"
        assert re.fullmatch(r'"[0-9a-f]{16}"', headers["ETag"])
        assert int(headers["Age"]) >= 0
        assert json.loads(body)["sections"][0]["remaining"] == 10
        assert metric(t, "ticketd_http_cache_misses_total") == misses + 1
        assert metric(t, "ticketd_http_cache_hits_total") >= 16

        status, nm, rest = http_get(t.http_port, path,
                                    {"If-None-Match": headers["ETag"]})
        assert status == 304 and rest == "" and nm["ETag"] == headers["ETag"]
        assert http_get(t.http_port, path, {"If-None-Match": '"0000"'})[0] == 200

        # A booking shows once the interval is over, not before.
        assert c.request(book(event_id, section_id, 2))["status"] == "confirmed"
        before = json.loads(http_get(t.http_port, path)[2])
        assert time.monotonic() - started < 5, "too slow to tell"
        assert before["sections"][0]["remaining"] == 10
        time.sleep(max(0, started + 5.2 - time.monotonic()))
        after = json.loads(http_get(t.http_port, path)[2])
        assert after["sections"][0]["remaining"] == 8
        assert after["sections"][0]["booked"] == 2
        assert metric(t, "ticketd_http_cache_misses_total") == misses + 2
        # Uncached paths stay uncached.
        status, headers, _ = http_get(t.http_port, "/bookings?event_id=%d" % event_id)
        assert status == 200 and headers["Cache-Control"] == "no-store"


def test_idle_connections_from_one_client_cannot_starve_the_endpoint(stack):
    """300 connections from one address that never finish their headers
    (a slowloris): health and readiness from another address still answer
    at once, and the idle ones are closed after the idle timeout."""
    with own_ticketd(stack, "slowloris") as (t, c):
        idle = []
        for _ in range(300):
            s = socket.socket()
            s.settimeout(2)
            try:
                s.bind(("127.0.0.2", 0))
                s.connect(("127.0.0.1", t.http_port))
                s.sendall(b"GET /events/99 HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                s.close()
                continue
            idle.append(s)
        try:
            timings = []
            for path in ("/healthz", "/readyz") * 5:
                started = time.monotonic()
                status, _, _ = http_get(t.http_port, path, timeout=5)
                timings.append(time.monotonic() - started)
                assert status == 200, path
            print("slowloris: health and readiness in %.1f-%.1f ms" %
                  (1000 * min(timings), 1000 * max(timings)))
            assert min(timings) < 0.1 and max(timings) < 1, timings
            # The idle ones were cut off (refused past the per-address
            # limit, or closed by the idle timeout).
            time.sleep(t_idle_timeout(t) + 1.5)
            alive = 0
            for s in idle:
                try:
                    s.settimeout(0.01)
                    alive += s.recv(1) != b""
                except socket.timeout:
                    alive += 1
                except OSError:
                    pass
            assert alive == 0, "%d idle connections still open" % alive
        finally:
            for s in idle:
                s.close()


def t_idle_timeout(t):
    return int(t.env.get("TICKETD_HTTP_IDLE_TIMEOUT_S", "3"))
