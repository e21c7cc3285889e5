"""Faults mid-flood: crash, rebalance, database and broker outages, poison
messages, a slow database, SIGTERM (issue 6). Each scenario floods its own
topic with ticket-flood (book, hold, confirm, release, cancel), causes the
fault, lets the system recover, then accounts for every request and prints

    scenario NAME: sent N, answered N, lost N, duplicated N, invariant ok|BROKEN
"""

import json
import os
import re
import signal
import subprocess
import time

import psycopg2
import pytest

from harness import (REPO, Client, Ticketd, duplicate_executions,
                     invariant_violations, unique)

SCENARIOS = {"kill9": 1, "rebalance": 2, "pg_outage": 3, "broker_outage": 4,
             "poison": 5, "slow_db": 6, "sigterm": 7}


class FaultRun:
    def __init__(self, stack, name, processes=1, n=3000, rate=400, **settings):
        self.stack = stack
        self.name = name
        self.topic = "faults-%s-%s" % (name, unique("t"))
        stack.create_topic(self.topic, partitions=4)
        self.group = "faults-" + unique(name)
        self.settings = dict(settings, request_topic=self.topic, group_id=self.group)
        self.members = []
        self.base = 100000 + SCENARIOS[name] * 1000
        self.n = n
        self.rate = rate
        for _ in range(processes):
            self.add_member()

    def add_member(self):
        t = Ticketd(self.stack, name="%s-%d" % (self.name, len(self.members)),
                    **self.settings)
        t.start()
        self.members.append(t)
        return t

    def start_flood(self):
        env = dict(os.environ, TICKETD_BROKERS=self.stack.brokers, TICKETD_PG=self.stack.pg)
        self.flood = subprocess.Popen(
            [os.path.join(REPO, "ticket-flood"), "--quiet", "--request-topic", self.topic,
             "--fresh-seed", "--event", str(self.base), "--section", str(self.base),
             "--sections", "8", "--capacity", "100000", "-n", str(self.n), "-q", "1",
             "-c", "1000", "--rate", str(self.rate), "--mix", "20", "--ttl", "60",
             "-t", "240"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.started = time.time()

    def wait_flood_progress(self, seconds):
        time.sleep(max(0, self.started + seconds - time.time()))

    def finish(self, expect_clean_exit=True):
        out, _ = self.flood.communicate(timeout=300)
        summary = re.search(r"^summary (.*)$", out, re.M)
        assert summary, out
        fields = dict(kv.split("=", 1) for kv in summary.group(1).split())
        run, sent = fields["run"], int(fields["sent"])
        answered = int(fields["answered"])
        rows = self.stack.query(
            "SELECT count(*), count(DISTINCT idempotency_key) FROM processed_requests "
            "WHERE request_id LIKE %s", ("flood-%s-%%" % run,))
        outcomes, distinct = rows[0]
        duplicated = len(duplicate_executions(self.stack))
        broken = invariant_violations(self.stack)
        lost = sent - min(answered, outcomes)
        print("scenario %s: sent %d, answered %d, lost %d, duplicated %d, invariant %s"
              % (self.name, sent, answered, lost, duplicated, "ok" if not broken else "BROKEN"))
        codes = []
        for t in self.members:
            if t.proc.poll() is None:
                codes.append(t.stop(timeout=60))
        assert outcomes == distinct == sent, (outcomes, distinct, sent, out)
        assert answered == sent and lost == 0, out
        assert duplicated == 0 and broken == []
        if expect_clean_exit:
            assert all(c == 0 for c in codes), [m.log_tail() for m in self.members]
        return out


def test_kill9_mid_flood_then_restart(stack):
    run = FaultRun(stack, "kill9")
    run.start_flood()
    run.wait_flood_progress(3)
    run.members[0].kill()
    time.sleep(1)
    run.add_member()
    run.finish()


def test_rebalance_kill_one_add_one(stack):
    run = FaultRun(stack, "rebalance", processes=3, rate=300)
    run.start_flood()
    run.wait_flood_progress(3)
    run.members[1].kill()
    run.wait_flood_progress(5)
    run.add_member()
    run.finish()


def test_postgres_outage_mid_flood(stack):
    run = FaultRun(stack, "pg_outage")
    run.start_flood()
    run.wait_flood_progress(3)
    stack.script("pg-stop")
    try:
        deadline = time.time() + 15
        ready = 200
        while time.time() < deadline and ready == 200:
            ready, _ = run.members[0].http("/readyz")
            time.sleep(0.2)
        assert ready == 503
        time.sleep(4)
        assert run.members[0].proc.poll() is None, "ticketd died while PostgreSQL was down"
    finally:
        stack.script("pg-start")
    run.finish()
    assert "database unavailable" in run.members[0].log_tail(400)


def test_broker_outage_mid_flood(stack):
    run = FaultRun(stack, "broker_outage")
    run.start_flood()
    run.wait_flood_progress(3)
    stack.script("kafka-stop")
    try:
        time.sleep(5)
        assert run.members[0].proc.poll() is None
    finally:
        stack.script("kafka-start")
    run.finish()


def test_sigterm_as_the_broker_stops_still_exits(stack):
    """Shutdown is bounded when the broker goes away during it: drain, at
    most 10 s to leave the group (its final commit cannot reach the
    coordinator), exit 0. It used to wait for the broker forever. The
    uncommitted request is redelivered later and answered from its
    idempotency record."""
    topic = "faults-nobroker-%s" % unique("t")
    stack.create_topic(topic)
    member = Ticketd(stack, name="ticketd-nobroker", request_topic=topic,
                     group_id=unique("nobroker"),
                     commit_interval_ms=60000).start()
    client = Client(stack, request_topic=topic)
    try:
        rid = unique("nb")
        reply = client.request({"type": "book", "request_id": rid,
                                "event_id": 99, "section_id": 100,
                                "quantity": 1, "customer": "nobroker@example.com"})
        assert reply["request_id"] == rid
    finally:
        client.close()
    # The broker goes away while ticketd is leaving the group.
    started = time.time()
    member.proc.send_signal(signal.SIGTERM)
    stack.script("kafka-stop")
    try:
        code = member.proc.wait(60)
        took = time.time() - started
    except subprocess.TimeoutExpired:
        member.proc.kill()
        member.proc.wait()
        code, took = None, None
    finally:
        stack.script("kafka-start")
    assert code == 0, member.log_tail()
    # the drain (nothing in flight), the 10 s close bound, and teardown
    assert took < 40, (took, member.log_tail())
    assert "ticketd stopped" in member.log_tail()


def test_poison_messages_mixed_in(stack):
    run = FaultRun(stack, "poison")
    client = Client(stack, request_topic=run.topic)
    poison = [
        b"{not json",
        bytes(range(256)) * 4,
        json.dumps({"type": "book", "request_id": "p", "quantity": "many"}).encode(),
        json.dumps({"type": "explode", "request_id": "p"}).encode(),
        json.dumps({"type": "book"}).encode(),
        b"x" * (10 * 1024 * 1024),
    ]
    try:
        run.start_flood()
        run.wait_flood_progress(2)
        ids = []
        for i, value in enumerate(poison):
            cid = unique("poison%d" % i).encode()
            ids.append(cid)
            client.send_raw(value, key=str(run.base).encode(),
                            headers={"kafka_correlationId": cid})
        for i, cid in enumerate(ids):
            replies = client.wait_for(lambda r: r["headers"].get("kafka_correlationId") == cid,
                                      timeout=60)
            assert len(replies) == 1, (i, replies)
            assert replies[0]["json"]["status"] == "invalid"
            if replies[0]["json"]["error"]["code"] in ("MALFORMED_JSON", "MESSAGE_TOO_LARGE"):
                dead = client.wait_for(
                    lambda r: r["headers"].get("kafka_correlationId") == cid,
                    source="dead_letters", timeout=30)
                assert len(dead) == 1
                assert dead[0]["headers"]["kafka_dlt-original-topic"] == run.topic.encode()
        run.finish()
    finally:
        client.close()


def test_slow_database_does_not_drop_the_consumer(stack):
    """A worker stuck 15 s behind a row lock, with max.poll.interval.ms at
    10 s: the poll loop never blocks on the database, so no rebalance."""
    run = FaultRun(stack, "slow_db", n=1000, rate=200,
                   consumer_properties="max.poll.interval.ms=10000,session.timeout.ms=6000")
    run.start_flood()
    run.wait_flood_progress(2)
    conn = psycopg2.connect(stack.pg)
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SELECT * FROM sections WHERE id BETWEEN %s AND %s FOR UPDATE",
                    (run.base, run.base + 7))
        time.sleep(15)
    conn.rollback()
    conn.close()
    run.finish()
    log = run.members[0].log_tail(400)
    assert log.count("partitions revoked") == 1, log  # only the final shutdown
    assert "partitions lost" not in log


def test_sigterm_mid_flood_then_restart(stack):
    run = FaultRun(stack, "sigterm")
    run.start_flood()
    run.wait_flood_progress(3)
    started = time.time()
    assert run.members[0].stop(signal.SIGTERM, timeout=30) == 0
    assert time.time() - started < 20  # drain_timeout_ms is 10 s in the tests
    log = run.members[0].log_tail(50)
    assert "ticketd stopped" in log
    run.add_member()
    run.finish()
