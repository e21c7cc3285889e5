"""The read-only query endpoint and observability (issue 3)."""

import http.client
import json
import re
import socket
import time

from harness import (Client, Ticketd, duplicate_executions, invariant_violations,
                     run_flood, unique)
from test_booking import book, new_event


def raw_request(port, data, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_events_paging_and_event_detail(client, ticketd):
    ids = [new_event(client, capacity=7, sections=2)[0] for _ in range(3)]
    status, page = ticketd.http_json("/events?limit=2")
    assert status == 200 and len(page["events"]) == 2 and page["next"]
    seen = [e["id"] for e in page["events"]]
    cursor = page["next"]
    while cursor:
        status, page = ticketd.http_json("/events?limit=2&after=" + cursor)
        assert status == 200
        seen += [e["id"] for e in page["events"]]
        cursor = page["next"]
    assert seen == sorted(seen) and set(ids) <= set(seen)

    client.request(book(ids[0], ticketd_section(ticketd, ids[0]), 3))
    # An event's view may be as old as http_cache_ms (100 by default).
    time.sleep(0.2)
    status, event = ticketd.http_json("/events/%d" % ids[0])
    assert status == 200 and event["id"] == ids[0]
    assert set(event) >= {"id", "name", "venue", "starts_at", "sections"}
    s0 = event["sections"][0]
    assert set(s0) >= {"id", "name", "capacity", "remaining", "booked", "held"}
    assert s0["capacity"] == 7 and s0["booked"] == 3 and s0["remaining"] == 4


def ticketd_section(ticketd, event_id):
    status, event = ticketd.http_json("/events/%d" % event_id)
    return event["sections"][0]["id"]


def test_bookings_filters_and_keyset_paging(client, ticketd):
    event_id, (section_id,) = new_event(client, capacity=50)
    customer = unique("cust") + "@example.com"
    for _ in range(5):
        assert client.request(book(event_id, section_id, 1, customer=customer))["status"] == "confirmed"
    client.request(book(event_id, section_id, 1, customer="someone-else"))
    got = []
    path = "/bookings?customer=%s&event_id=%d&limit=2" % (customer, event_id)
    cursor = None
    for _ in range(10):
        status, page = ticketd.http_json(path + ("&after=" + cursor if cursor else ""))
        assert status == 200
        got += page["bookings"]
        cursor = page["next"]
        if not cursor:
            break
    assert len(got) == 5 and all(b["customer"] == customer for b in got)
    assert [b["id"] for b in got] == sorted(b["id"] for b in got)
    status, one = ticketd.http_json("/bookings/%d" % got[0]["id"])
    assert status == 200 and one["id"] == got[0]["id"] and one["status"] == "confirmed"
    status, by_section = ticketd.http_json("/bookings?section_id=%d&limit=500" % section_id)
    assert status == 200 and len(by_section["bookings"]) == 6 and by_section["next"] is None


def test_hold_and_request_lookup(client, ticketd):
    event_id, (section_id,) = new_event(client, capacity=5)
    rid = unique("lookup")
    r = client.request({"type": "hold", "request_id": rid, "event_id": event_id,
                        "section_id": section_id, "quantity": 2, "customer": "h@x"})
    status, held = ticketd.http_json("/holds/%d" % r["hold_id"])
    assert status == 200 and held["status"] == "active" and held["quantity"] == 2
    status, stored = ticketd.http_json("/requests/" + rid)
    assert status == 200 and stored["status"] == "held"
    assert stored["reply"]["hold_id"] == r["hold_id"]


def test_request_lookup_when_the_idempotency_key_is_not_the_request_id(client, ticketd):
    event_id, (section_id,) = new_event(client, capacity=5)
    rid, key = unique("lookup-keyed"), unique("own-key")
    book = {"type": "book", "request_id": rid, "event_id": event_id,
            "section_id": section_id, "quantity": 1, "customer": "k@x"}
    first = client.request(dict(book))  # keyed by its request_id
    status, stored = ticketd.http_json("/requests/" + rid)
    assert status == 200 and stored["idempotency_key"] == rid
    assert stored["reply"]["booking_id"] == first["booking_id"]
    # The same request_id with a key of its own is another request; the
    # lookup shows the latest of the two.
    client.send(dict(book, idempotency_key=key))
    second = client.replies_for(rid, 2)[1]["json"]
    assert second["status"] == "confirmed" and second["booking_id"] != first["booking_id"]
    status, stored = ticketd.http_json("/requests/" + rid)
    assert status == 200 and stored["idempotency_key"] == key
    assert stored["reply"]["booking_id"] == second["booking_id"]
    # The key is not a request id: nothing is found under it.
    assert ticketd.http("/requests/" + key)[0] == 404


def test_status_codes(ticketd):
    assert ticketd.http("/events/0")[0] == 400
    assert ticketd.http("/events/abc")[0] == 400
    assert ticketd.http("/events/99999999999")[0] == 404
    assert ticketd.http("/bookings/123456789")[0] == 404
    assert ticketd.http("/holds/123456789")[0] == 404
    assert ticketd.http("/requests/no-such-request")[0] == 404
    assert ticketd.http("/requests/bad%20id")[0] == 400
    assert ticketd.http("/events?limit=0")[0] == 400
    assert ticketd.http("/events?limit=100000")[0] == 400
    assert ticketd.http("/events?limit=ten")[0] == 400
    assert ticketd.http("/bookings?event_id=-1")[0] == 400
    assert ticketd.http("/bookings?after=x")[0] == 400
    assert ticketd.http("/nope")[0] == 404
    assert ticketd.http("/events/1/extra")[0] == 404
    status, body = ticketd.http("/events/abc")
    assert json.loads(body)["error"]["code"] == "BAD_ID"
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, _ = ticketd.http("/events", method=method)
        assert status == 405, method
    assert ticketd.http("/healthz") == (200, '{"status":"ok"}')


def test_hostile_requests_do_not_hurt(ticketd):
    port = ticketd.http_port
    long_path = b"/events/" + b"9" * 5000
    resp = raw_request(port, b"GET " + long_path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] (400|414|431)", resp), resp[:80]
    resp = raw_request(port, b"GET /events HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] (400|413|431)", resp) or resp == b"", resp[:80]
    resp = raw_request(port, b"\x00\xff garbage\r\n\r\n")
    assert resp == b"" or resp.startswith(b"HTTP/1.1 400"), resp[:80]
    resp = raw_request(port, b"GET /bookings?customer=%27%3B%20DROP%20TABLE%20bookings%3B HTTP/1.1\r\nHost: x\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 200"), resp[:80]
    assert ticketd.http("/healthz")[0] == 200


def metric(ticketd, name):
    status, text = ticketd.http("/metrics")
    assert status == 200
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_move_after_a_flood(stack, ticketd):
    status, text = ticketd.http("/metrics")
    assert status == 200
    for name in ("ticketd_requests_total", "ticketd_batch_size_bucket",
                 "ticketd_transaction_seconds_bucket", "ticketd_request_latency_seconds_bucket",
                 "ticketd_batch_retries_total", "ticketd_dead_lettered_total",
                 "ticketd_consumer_lag", "ticketd_queue_depth"):
        assert name in text, name
    before = metric(ticketd, 'ticketd_requests_total{type="book"')
    latency_before = metric(ticketd, "ticketd_request_latency_seconds_count")
    code, out = run_flood(stack, "--fresh-seed", "--event", "8001", "--section", "8001",
                          "--capacity", "1000", "-n", "500", "-q", "1", "-c", "100")
    assert code == 0, out
    deadline = time.time() + 10
    while time.time() < deadline and metric(ticketd, 'ticketd_requests_total{type="book"') < before + 500:
        time.sleep(0.2)
    assert metric(ticketd, 'ticketd_requests_total{type="book"') >= before + 500
    assert metric(ticketd, "ticketd_request_latency_seconds_count") >= latency_before + 500
    assert metric(ticketd, "ticketd_batch_size_count") > 0


def test_readyz_follows_the_database(stack, client, ticketd):
    assert ticketd.http("/readyz")[0] == 200
    stack.script("pg-stop")
    try:
        deadline = time.time() + 20
        status = 200
        while time.time() < deadline and status == 200:
            status, body = ticketd.http("/readyz")
            time.sleep(0.2)
        assert status == 503, body
        assert json.loads(body)["database"] == "down"
        assert ticketd.http("/events")[0] == 503
        assert ticketd.http("/healthz")[0] == 200
    finally:
        stack.script("pg-start")
    deadline = time.time() + 30
    while time.time() < deadline and ticketd.http("/readyz")[0] != 200:
        time.sleep(0.2)
    assert ticketd.http("/readyz")[0] == 200
    # And the workers serve again.
    event_id, (section_id,) = new_event(client, capacity=3)
    assert client.request(book(event_id, section_id, 1))["status"] == "confirmed"
