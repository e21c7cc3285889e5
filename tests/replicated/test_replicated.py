"""The replicated deployment (issue 16): three Kafka nodes with replication
factor 3 and min.insync.replicas=2, a PostgreSQL primary with a synchronous
standby, and ticketd across their failures. The scenarios flood thousands
of requests from ticket-flood through three ticketd processes in one group,
cause the fault, and hold every acknowledged reply against the surviving
database; each prints

    scenario NAME: sent N, answered N, lost N, duplicated N, invariant ok|BROKEN

and the timing of its faults (tests/replicated/replicated.py says how each
figure is taken). `make test-replicated` runs this file.
"""

import json
import re
import time

import psycopg2
from confluent_kafka.admin import ConfigResource

from harness import Client, Ticketd, unique
from replicated import (Scenario, admin, busiest_leader, create_topic,
                        wait_in_sync)

TOPICS = ("bookings.requests", "bookings.replies", "bookings.dead-letter",
          "bookings.availability")


def node_conninfo(stack, n):
    return stack.env["STACK_PG_NODE%d" % n]


def node_query(stack, n, sql, params=()):
    conn = psycopg2.connect(node_conninfo(stack, n))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def roles(stack):
    """(primary node, the other node) as the servers say; the other may be
    down (a primary just killed)."""
    recovery = {}
    for n in (1, 2):
        try:
            recovery[n] = node_query(stack, n, "SELECT pg_is_in_recovery()")[0][0]
        except psycopg2.OperationalError:
            recovery[n] = None  # down
    primary = [n for n, r in recovery.items() if r is False]
    assert len(primary) == 1, recovery
    return primary[0], 3 - primary[0]


def metric(ticketd, name):
    status, text = ticketd.http("/metrics")
    assert status == 200
    found = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M)
    assert found, "no %s in /metrics" % name
    return float(found.group(1))


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("not within %ds: %s" % (timeout, what))


def test_the_stack_is_replicated(stack):
    """Every topic on three replicas, two needed for a write, no unclean
    election; the standby streams and is synchronous; stack.env's
    conninfo names both servers and lands on the primary."""
    a = admin(stack.brokers)
    md = a.list_topics(timeout=30)
    assert len(md.brokers) == 3
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in TOPICS]
    for resource, future in a.describe_configs(resources).items():
        config = {k: v.value for k, v in future.result(30).items()}
        assert config["min.insync.replicas"] == "2", resource
        assert config["unclean.leader.election.enable"] == "false", resource
        for p in md.topics[resource.name].partitions.values():
            assert len(p.replicas) == 3 and len(p.isrs) == 3, (resource, p)
    assert "target_session_attrs=read-write" in stack.pg
    assert stack.pg.count("127.0.0.1") == 2
    primary, standby = roles(stack)
    assert stack.query("SELECT inet_server_port()")[0][0] == \
        int(re.search(r"port=(\d+)", node_conninfo(stack, primary)).group(1))
    rows = node_query(stack, primary,
                      "SELECT application_name, state, sync_state FROM pg_stat_replication")
    assert rows == [("pg%d" % standby, "streaming", "sync")]
    assert node_query(stack, primary, "SHOW synchronous_commit") == [("on",)]


def test_reads_from_a_standby_and_requests_from_the_primary(stack):
    """http_pg_conninfo on the standby: the views answer from it, as far as
    it has replayed; GET /requests/{id} answers from the primary at once;
    the replication lag is a metric, sampled, and says when the standby is
    behind."""
    primary, standby = roles(stack)
    topic = "rep-reads-" + unique("t")
    create_topic(stack.brokers, topic, 1)
    member = Ticketd(stack, name="reads", request_topic=topic, group_id=unique("reads"),
                     http_pg_conninfo=stack.env["STACK_PG_READS"]).start(timeout=120)
    client = Client(stack, request_topic=topic)
    paused = False
    try:
        wait_for(lambda: metric(member, "ticketd_http_db_standby") == 1, 10,
                 "the endpoint's database is a standby")
        wait_for(lambda: metric(member, "ticketd_http_db_replication_lag_seconds") == 0, 10,
                 "a standby that has replayed everything is 0 s behind")
        created = client.request({"type": "create_event", "request_id": unique("ev"),
                                  "name": "Reads", "sections": [{"name": "A",
                                                                 "capacity": 10}]})
        assert created["status"] == "ok", created
        event = created["event_id"]
        wait_for(lambda: member.http("/events/%d" % event)[0] == 200, 10,
                 "the standby has the event")

        node_query(stack, standby, "SELECT pg_wal_replay_pause()")
        paused = True
        rid = unique("rd")
        reply = client.request({"type": "book", "request_id": rid, "event_id": event,
                                "section_id": created["section_ids"][0], "quantity": 2,
                                "customer": "reads@example.com"})
        assert reply["status"] == "confirmed", reply
        status, doc = member.http_json("/requests/%s" % rid)
        assert status == 200 and doc["reply"] == reply, (status, doc)
        # The standby has the commit (synchronous) but has not replayed it.
        assert member.http("/bookings/%d" % reply["booking_id"])[0] == 404
        wait_for(lambda: metric(member, "ticketd_http_db_replication_lag_seconds") > 1.0, 10,
                 "the lag of a standby whose replay is paused grows")

        node_query(stack, standby, "SELECT pg_wal_replay_resume()")
        paused = False
        wait_for(lambda: member.http("/bookings/%d" % reply["booking_id"])[0] == 200, 10,
                 "the standby replays the booking")
        wait_for(lambda: metric(member, "ticketd_http_db_replication_lag_seconds") == 0, 10,
                 "the lag is 0 again")
        status, doc = member.http_json("/readyz")
        assert status == 200 and doc["database_server"].endswith(
            ":%s" % re.search(r"port=(\d+)", node_conninfo(stack, primary)).group(1)), doc
    finally:
        if paused:
            node_query(stack, standby, "SELECT pg_wal_replay_resume()")
        client.close()
        code = member.stop()
    assert code == 0, member.log_tail()


def test_a_commit_lost_with_its_outcome_unknown_is_replayed(stack):
    """The connection dies while the COMMIT waits for the synchronous
    standby (the standby is stopped, the backend terminated): the
    transaction has committed on the primary, ticketd cannot know. It
    reconnects and runs the batch again; the idempotency record turns that
    run into a replay, and the one reply the client gets is the stored
    one. Nothing is booked twice."""
    primary, _ = roles(stack)
    topic = "rep-unknown-" + unique("t")
    create_topic(stack.brokers, topic, 1)
    member = Ticketd(stack, name="commit-unknown", request_topic=topic,
                     group_id=unique("unknown"), workers=1).start(timeout=120)
    client = Client(stack, request_topic=topic)
    standby_down = False
    try:
        created = client.request({"type": "create_event", "request_id": unique("ev"),
                                  "name": "Unknown", "sections": [{"name": "A",
                                                                   "capacity": 10}]})
        assert created["status"] == "ok", created
        stack.script("pg-standby-stop")
        standby_down = True
        rid = unique("cu")
        client.send({"type": "book", "request_id": rid, "event_id": created["event_id"],
                     "section_id": created["section_ids"][0], "quantity": 3,
                     "customer": "unknown@example.com"})
        waiting = []

        def commit_waits():
            waiting[:] = node_query(
                stack, primary,
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' "
                "AND application_name LIKE 'ticketd/%%'")
            return len(waiting) == 1
        wait_for(commit_waits, 20, "the worker's COMMIT waits for the standby")
        assert not client.replies_for(rid, timeout=0.5), "answered before the commit returned"
        node_query(stack, primary, "SELECT pg_terminate_backend(%s)", (waiting[0][0],))
        wait_for(lambda: metric(member, "ticketd_db_commit_unknown_total") == 1, 10,
                 "ticketd counts the COMMIT whose outcome it does not know")
        # Committed on the primary already, unanswered: the new run of the
        # batch waits for the standby in its turn.
        assert stack.query("SELECT count(*) FROM bookings WHERE request_key = %s",
                           (rid,)) == [(1,)]
        assert not client.replies_for(rid, timeout=1)
        stack.script("pg-standby-start")
        standby_down = False
        reply = client.reply(rid, timeout=30)
        assert reply["status"] == "confirmed" and reply["quantity"] == 3, reply
        time.sleep(2)
        assert len(client.replies_for(rid, count=2, timeout=0)) == 1
        stored = stack.query("SELECT reply FROM processed_requests WHERE idempotency_key = %s",
                             (rid,))
        assert json.loads(stored[0][0]) == reply
        assert stack.query("SELECT count(*), sum(quantity) FROM bookings "
                           "WHERE request_key = %s", (rid,)) == [(1, 3)]
        assert metric(member, "ticketd_requests_replayed_total") >= 1
        assert stack.query("SELECT count(*) FROM section_invariant WHERE NOT ok") == [(0,)]
    finally:
        if standby_down:
            stack.script("pg-standby-start")
        client.close()
        code = member.stop()
    assert code == 0, member.log_tail()


def test_broker_leader_kill(stack):
    """kill -9 the node that leads the most request partitions mid-flood;
    the cluster elects new leaders; the node comes back later."""
    run = Scenario(stack, "broker_leader_kill", base=310000, n=4000, rate=250)
    try:
        run.start_flood()
        run.wait_until(5)
        node, counts = busiest_leader(stack.brokers, run.request_topic)
        run.fault("kafka-kill %d (leads %d of %d request partitions)"
                  % (node, counts[node], run.request_partitions), "kafka-kill", str(node))
        run.wait_until(17)
        stack.script("kafka-start", str(node))
        run.finish()
        wait_in_sync(stack.brokers, [run.request_topic, run.reply_topic] + list(TOPICS))
    finally:
        codes = run.stop_members()
    run.assert_clean()
    assert all(c == 0 for c in codes), [m.log_tail() for m in run.members]


def test_broker_rolling_restart(stack):
    """Each node stopped and started in turn mid-flood, as an upgrade
    would: the next only once every partition is in sync again."""
    run = Scenario(stack, "broker_rolling_restart", base=320000, n=6000, rate=110)
    try:
        run.start_flood()
        run.wait_until(4)
        for node in (1, 2, 3):
            assert run.flood.poll() is None, "the flood ended before node %d's restart" % node
            run.fault("kafka-stop %d" % node, "kafka-stop", str(node))
            stack.script("kafka-start", str(node))
            wait_in_sync(stack.brokers, [run.request_topic, run.reply_topic] + list(TOPICS))
        run.finish()
    finally:
        codes = run.stop_members()
    run.assert_clean()
    assert all(c == 0 for c in codes), [m.log_tail() for m in run.members]


def test_pg_failover(stack):
    """kill -9 the PostgreSQL primary mid-flood and promote the standby;
    ticketd finds the new primary through its conninfo and carries on.
    Afterwards the old primary rejoins as the synchronous standby."""
    old, new = roles(stack)
    run = Scenario(stack, "pg_failover", base=330000, n=4000, rate=250)
    try:
        run.start_flood()
        run.wait_until(5)
        run.fault("pg-kill-primary (node %d)" % old, "pg-kill-primary")
        stack.script("pg-promote")
        run.finish()
        assert roles(stack) == (new, old)
        port = re.search(r"port=(\d+)", node_conninfo(stack, new)).group(1)
        for m in run.members:
            status, doc = m.http_json("/readyz")
            assert status == 200 and doc["database_server"].endswith(":" + port), doc
            assert metric(m, "ticketd_db_server_changes_total") >= 1
    finally:
        codes = run.stop_members()
    run.assert_clean()
    assert all(c == 0 for c in codes), [m.log_tail() for m in run.members]
    stack.script("pg-rejoin")
    rows = node_query(stack, new, "SELECT application_name, sync_state FROM pg_stat_replication")
    assert rows == [("pg%d" % old, "sync")]
