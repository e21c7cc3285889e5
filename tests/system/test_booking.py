"""The spine: booking through the real broker and database (issue 2)."""

import json
import os
import re
import signal
import subprocess

from harness import (DEAD_LETTER, REPLIES, REQUESTS, REPO, Client, Ticketd,
                     duplicate_executions, invariant_violations, run_flood,
                     unique)


def new_event(client, capacity=10, sections=1):
    rid = unique("ev")
    reply = client.request({
        "type": "create_event", "request_id": rid, "name": "Test " + rid,
        "venue": "Hall", "starts_at": "2026-12-31T20:00:00Z",
        "sections": [{"name": "S%d" % i, "capacity": capacity}
                     for i in range(sections)]})
    assert reply["status"] == "ok", reply
    return reply["event_id"], reply["section_ids"]


def book(event_id, section_id, quantity=1, customer="alice@example.com", rid=None):
    return {"type": "book", "request_id": rid or unique("bk"),
            "event_id": event_id, "section_id": section_id,
            "quantity": quantity, "customer": customer}


def test_seed_scenario_one_confirmed_nine_rejected(stack, ticketd):
    code, out = run_flood(stack, "--fresh-seed", "--expect-confirmed", "1")
    assert code == 0, out
    assert re.search(r"^\s+confirmed\s+1$", out, re.M), out
    assert re.search(r"^\s+rejected\s+9$", out, re.M), out
    assert re.search(r"^\s+no reply\s+0$", out, re.M), out
    assert "INSUFFICIENT_SEATS" in out, out
    rows = stack.query("SELECT capacity, remaining FROM sections WHERE id = 100")
    assert rows == [(5, 0)]
    assert stack.query("SELECT sum(quantity) FROM bookings "
                       "WHERE section_id = 100 AND status = 'confirmed'") == [(5,)]
    assert invariant_violations(stack) == []


def test_create_event_then_book_and_sell_out(client, stack):
    event_id, (section_id,) = new_event(client, capacity=3)
    first = client.request(book(event_id, section_id, 2))
    assert first["status"] == "confirmed"
    assert first["remaining"] == 1 and first["quantity"] == 2
    assert first["booking_id"] > 0
    second = client.request(book(event_id, section_id, 2))
    assert second["status"] == "rejected"
    assert second["error"]["code"] == "INSUFFICIENT_SEATS"
    assert second["remaining"] == 1
    assert stack.query("SELECT remaining FROM sections WHERE id = %s",
                       (section_id,)) == [(1,)]


def test_same_request_twice_books_once_and_answers_identically(client, stack):
    event_id, (section_id,) = new_event(client, capacity=10)
    request = book(event_id, section_id, 3)
    client.send(request)
    client.send(request)
    replies = client.replies_for(request["request_id"], count=2)
    assert len(replies) == 2
    assert replies[0]["value"] == replies[1]["value"]
    assert replies[0]["json"]["status"] == "confirmed"
    assert stack.query("SELECT count(*), sum(quantity) FROM bookings WHERE section_id = %s",
                       (section_id,)) == [(1, 3)]
    assert stack.query("SELECT remaining FROM sections WHERE id = %s",
                       (section_id,)) == [(7,)]


def test_idempotency_key_conflict(client, stack):
    event_id, (section_id,) = new_event(client, capacity=10)
    key = unique("idem")
    first = book(event_id, section_id, 1)
    first["idempotency_key"] = key
    assert client.request(first)["status"] == "confirmed"
    retry = dict(first, request_id=unique("retry"))
    replay = client.request(retry)
    assert replay["status"] == "confirmed"
    assert replay["request_id"] == retry["request_id"]
    other = dict(first, request_id=unique("other"), quantity=2)
    conflict = client.request(other)
    assert conflict["status"] == "rejected"
    assert conflict["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert stack.query("SELECT count(*) FROM bookings WHERE section_id = %s",
                       (section_id,)) == [(1,)]


def test_correlation_id_echoed_byte_for_byte(client):
    event_id, (section_id,) = new_event(client)
    correlation = bytes(range(240, 256))  # 16 raw bytes, as Spring sends
    request = book(event_id, section_id)
    client.send(request, correlation=correlation)
    found = client.replies_for(request["request_id"])
    assert found and found[0]["headers"]["kafka_correlationId"] == correlation
    assert found[0]["key"] == str(section_id).encode()


def test_reply_topic_and_partition_headers_honoured(client, stack):
    topic = "replies-" + unique("rt")
    stack.create_topic(topic, partitions=3)
    other = Client(stack, reply_topic=topic)
    try:
        event_id, (section_id,) = new_event(client)
        request = book(event_id, section_id)
        other.send(request, headers={"kafka_replyPartition": (2).to_bytes(4, "big")})
        found = other.replies_for(request["request_id"])
        assert found, "no reply on %s" % topic
        assert found[0]["topic"] == topic and found[0]["partition"] == 2
    finally:
        other.close()


def bad_requests():
    ok = {"type": "book", "event_id": 99, "section_id": 100, "quantity": 1,
          "customer": "x@example.com"}
    cases = [
        (b"{not json", "MALFORMED_JSON", True),
        (b"\x00\xff\xfe garbage", "MALFORMED_JSON", True),
        (b"[1, 2, 3]", "MALFORMED_JSON", True),
        (json.dumps(dict(ok, request_id="r" * 129)).encode(), "INVALID_FIELD", False),
        (json.dumps(dict(ok, type="teleport")).encode(), "UNKNOWN_TYPE", False),
        (json.dumps(dict(ok, quantity="5")).encode(), "INVALID_FIELD", False),
        (json.dumps(dict(ok, quantity=0)).encode(), "INVALID_FIELD", False),
        (json.dumps(dict(ok, quantity=-3)).encode(), "INVALID_FIELD", False),
        (json.dumps(dict(ok, quantity=10 ** 12)).encode(), "INVALID_FIELD", False),
        (json.dumps(dict(ok, quantity=11)).encode(), "QUANTITY_LIMIT", False),
        (json.dumps(dict(ok, event_id=None)).encode(), "INVALID_FIELD", False),
        (json.dumps(dict(ok, customer="c" * 300)).encode(), "INVALID_FIELD", False),
        (json.dumps(dict(ok, event_id=424242)).encode(), "EVENT_NOT_FOUND", False),
        (json.dumps(dict(ok, section_id=424242)).encode(), "SECTION_NOT_FOUND", False),
    ]
    for i, (value, code, dead) in enumerate(cases):
        yield i, value, code, dead


def test_bad_input_gets_error_code_changes_nothing(client, stack):
    before = stack.query("SELECT count(*) FROM bookings")
    before_remaining = stack.query("SELECT sum(remaining) FROM sections")
    sent = []
    for i, value, code, dead in bad_requests():
        rid = unique("bad%d" % i)
        if value.startswith(b"{\"type\""):
            obj = json.loads(value)
            obj.setdefault("request_id", rid)
            if obj["request_id"] != "r" * 129:
                obj["request_id"] = rid
            value = json.dumps(obj).encode()
        client.send_raw(value, key=b"100",
                        headers={"kafka_replyTopic": REPLIES.encode(),
                                 "kafka_correlationId": rid.encode()})
        sent.append((rid, code, dead))
    for rid, code, dead in sent:
        found = client.wait_for(
            lambda r, rid=rid: r["headers"].get("kafka_correlationId") == rid.encode())
        assert found, "no reply for %s (%s)" % (rid, code)
        reply = found[0]["json"]
        assert reply["error"]["code"] == code, reply
        expected = "invalid" if code in ("MALFORMED_JSON", "INVALID_FIELD",
                                         "UNKNOWN_TYPE") else "rejected"
        assert reply["status"] == expected, reply
        if dead:
            copies = client.wait_for(
                lambda r, rid=rid: r["headers"].get("kafka_correlationId") == rid.encode(),
                source="dead_letters")
            assert copies, "no dead-letter copy for %s" % rid
            h = copies[0]["headers"]
            assert h["kafka_dlt-original-topic"] == REQUESTS.encode()
            assert len(h["kafka_dlt-original-partition"]) == 4
            assert len(h["kafka_dlt-original-offset"]) == 8
            assert code.encode() in h["kafka_dlt-exception-message"]
    assert stack.query("SELECT count(*) FROM bookings") == before
    assert stack.query("SELECT sum(remaining) FROM sections") == before_remaining
    # The worker still serves the next valid request.
    event_id, (section_id,) = new_event(client)
    assert client.request(book(event_id, section_id))["status"] == "confirmed"


def test_oversized_message_answered_and_dead_lettered(client):
    rid = unique("big")
    value = json.dumps({"type": "book", "request_id": rid, "customer": "x" * 70000}).encode()
    client.send_raw(value, headers={"kafka_correlationId": rid.encode()})
    found = client.wait_for(lambda r: r["headers"].get("kafka_correlationId") == rid.encode())
    assert found and found[0]["json"]["error"]["code"] == "MESSAGE_TOO_LARGE"
    copies = client.wait_for(lambda r: r["headers"].get("kafka_correlationId") == rid.encode(),
                             source="dead_letters")
    assert copies and copies[0]["value"] == value


def test_message_from_kcat_without_key_or_headers(client, stack):
    event_id, (section_id,) = new_event(client)
    rid = unique("kcat")
    body = json.dumps(book(event_id, section_id, rid=rid))
    subprocess.run(["kcat", "-P", "-b", stack.brokers, "-t", REQUESTS],
                   input=body.encode(), check=True, timeout=30)
    reply = client.reply(rid)
    assert reply["status"] == "confirmed"
    found = client.replies_for(rid)
    assert found[0]["topic"] == REPLIES and found[0]["key"] is None


def test_reply_to_field_routes_the_reply(client, stack):
    topic = "replies-" + unique("field")
    stack.create_topic(topic, partitions=1)
    other = Client(stack, reply_topic=topic)
    try:
        event_id, (section_id,) = new_event(client)
        request = dict(book(event_id, section_id), reply_to=topic)
        other.send_raw(json.dumps(request).encode(), key=str(section_id).encode())
        found = other.replies_for(request["request_id"])
        assert found and found[0]["topic"] == topic
    finally:
        other.close()


def test_sigterm_drains_and_exits_zero(stack, client):
    """A second member joins, takes work, and leaves on SIGTERM: exit 0,
    nothing lost, nothing doubled."""
    extra = Ticketd(stack, name="ticketd-sigterm").start()
    event_id, section_ids = new_event(client, capacity=1000, sections=8)
    requests = [book(event_id, section_ids[i % 8], 1, rid=unique("st%d" % i))
                for i in range(400)]
    for r in requests:
        client.producer.produce(REQUESTS, json.dumps(r).encode(),
                                key=str(r["section_id"]).encode(),
                                headers={"kafka_replyTopic": REPLIES.encode()})
    client.producer.flush(30)
    code = extra.stop(signal.SIGTERM, timeout=30)
    assert code == 0, extra.log_tail()
    for r in requests:
        assert client.replies_for(r["request_id"], timeout=60), r["request_id"]
    rows = stack.query("SELECT count(*), coalesce(sum(quantity), 0) FROM bookings "
                       "WHERE event_id = %s", (event_id,))
    assert rows == [(400, 400)]
    assert invariant_violations(stack) == []
    assert duplicate_executions(stack) == []


def test_bad_config_stops_startup_with_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text('brokers = "127.0.0.1:1";\nworkers = 1000;\n')
    proc = subprocess.run([os.path.join(REPO, "ticketd"), "-c", str(conf)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "bad.conf:2" in proc.stderr and "workers" in proc.stderr
