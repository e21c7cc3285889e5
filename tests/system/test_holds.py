"""Holds: expiry, confirmation, release, cancellation (issue 4)."""

import re
import time

from harness import (Client, Ticketd, duplicate_executions,
                     invariant_violations, run_flood, unique)
from test_booking import book, new_event


def hold(event_id, section_id, quantity=1, ttl_s=None, customer="bob@example.com"):
    r = {"type": "hold", "request_id": unique("hd"), "event_id": event_id,
         "section_id": section_id, "quantity": quantity, "customer": customer}
    if ttl_s is not None:
        r["ttl_s"] = ttl_s
    return r


def simple(kind, **ids):
    return dict({"type": kind, "request_id": unique(kind)}, **ids)


def remaining(stack, section_id):
    return stack.query("SELECT remaining FROM sections WHERE id = %s", (section_id,))[0][0]


def test_hold_then_confirm(client, stack):
    event_id, (section_id,) = new_event(client, capacity=10)
    held = client.request(hold(event_id, section_id, 3, ttl_s=60))
    assert held["status"] == "held" and held["remaining"] == 7
    assert held["hold_id"] > 0 and held["expires_at"].endswith("Z")
    confirmed = client.request(simple("confirm", hold_id=held["hold_id"]))
    assert confirmed["status"] == "ok", confirmed
    assert confirmed["booking_id"] > 0 and confirmed["remaining"] == 7
    assert remaining(stack, section_id) == 7  # no second decrement
    again = client.request(simple("confirm", hold_id=held["hold_id"]))
    assert again["error"]["code"] == "HOLD_NOT_ACTIVE"
    release = client.request(simple("release", hold_id=held["hold_id"]))
    assert release["error"]["code"] == "HOLD_NOT_ACTIVE"
    assert invariant_violations(stack) == []


def test_hold_then_release(client, stack):
    event_id, (section_id,) = new_event(client, capacity=10)
    held = client.request(hold(event_id, section_id, 4))
    assert remaining(stack, section_id) == 6
    released = client.request(simple("release", hold_id=held["hold_id"]))
    assert released["status"] == "ok" and released["remaining"] == 10
    assert remaining(stack, section_id) == 10
    late = client.request(simple("confirm", hold_id=held["hold_id"]))
    assert late["error"]["code"] == "HOLD_NOT_ACTIVE"


def test_expired_hold_seats_return_within_reaper_interval(client, stack):
    event_id, (section_id,) = new_event(client, capacity=5)
    held = client.request(hold(event_id, section_id, 5, ttl_s=1))
    assert remaining(stack, section_id) == 0
    deadline = time.time() + 10
    while time.time() < deadline and remaining(stack, section_id) != 5:
        time.sleep(0.1)
    assert remaining(stack, section_id) == 5
    assert stack.query("SELECT status FROM holds WHERE id = %s",
                       (held["hold_id"],)) == [("expired",)]
    late = client.request(simple("confirm", hold_id=held["hold_id"]))
    assert late["error"]["code"] == "HOLD_EXPIRED"
    assert invariant_violations(stack) == []


def test_book_reclaims_expired_holds_before_saying_sold_out(stack):
    """With the reaper far away, a buyer still gets the seats of an
    expired hold: the booking transaction reclaims them itself."""
    topic = "requests-" + unique("noreap")
    stack.create_topic(topic, partitions=1)
    t = Ticketd(stack, name="ticketd-noreaper", request_topic=topic,
                group_id="noreap-" + unique("g"), reaper_interval_ms=600000).start()
    c = Client(stack, request_topic=topic)
    try:
        event_id, (section_id,) = new_event(c, capacity=2)
        c.request(hold(event_id, section_id, 2, ttl_s=1))
        time.sleep(1.5)
        got = c.request(book(event_id, section_id, 2))
        assert got["status"] == "confirmed", got
        assert stack.query("SELECT status FROM holds WHERE section_id = %s",
                           (section_id,)) == [("expired",)]
        assert invariant_violations(stack) == []
    finally:
        c.close()
        assert t.stop() == 0


def test_cancel_returns_seats_once(client, stack):
    event_id, (section_id,) = new_event(client, capacity=10)
    booked = client.request(book(event_id, section_id, 4))
    cancelled = client.request(simple("cancel", booking_id=booked["booking_id"]))
    assert cancelled["status"] == "ok" and cancelled["remaining"] == 10
    twice = client.request(simple("cancel", booking_id=booked["booking_id"]))
    assert twice["status"] == "rejected"
    assert twice["error"]["code"] == "ALREADY_CANCELLED"
    assert remaining(stack, section_id) == 10


def test_hold_error_codes(client, stack):
    event_id, (section_id,) = new_event(client, capacity=2)
    assert client.request(simple("confirm", hold_id=987654321))["error"]["code"] == "HOLD_NOT_FOUND"
    assert client.request(simple("release", hold_id=987654321))["error"]["code"] == "HOLD_NOT_FOUND"
    assert client.request(simple("cancel", booking_id=987654321))["error"]["code"] == "BOOKING_NOT_FOUND"
    assert client.request(hold(event_id, section_id, 3))["error"]["code"] == "INSUFFICIENT_SEATS"
    assert client.request(hold(event_id, section_id, 11))["error"]["code"] == "QUANTITY_LIMIT"
    assert client.request(hold(event_id, section_id, 1, ttl_s=999999))["error"]["code"] == "INVALID_FIELD"
    assert client.request(hold(event_id, 424242))["error"]["code"] == "SECTION_NOT_FOUND"
    assert client.request(hold(424242, section_id))["error"]["code"] == "EVENT_NOT_FOUND"
    assert remaining(stack, section_id) == 2


def test_repeated_hold_and_confirm_run_once(client, stack):
    event_id, (section_id,) = new_event(client, capacity=10)
    h = hold(event_id, section_id, 2)
    client.send(h)
    client.send(h)
    replies = client.replies_for(h["request_id"], count=2)
    assert len(replies) == 2 and replies[0]["value"] == replies[1]["value"]
    hold_id = replies[0]["json"]["hold_id"]
    c = simple("confirm", hold_id=hold_id)
    client.send(c)
    client.send(c)
    confirms = client.replies_for(c["request_id"], count=2)
    assert len(confirms) == 2 and confirms[0]["value"] == confirms[1]["value"]
    assert stack.query("SELECT count(*) FROM holds WHERE section_id = %s", (section_id,)) == [(1,)]
    assert stack.query("SELECT count(*) FROM bookings WHERE section_id = %s", (section_id,)) == [(1,)]
    assert remaining(stack, section_id) == 8


def test_per_customer_limit(stack):
    topic = "requests-" + unique("limit")
    stack.create_topic(topic, partitions=1)
    t = Ticketd(stack, name="ticketd-limit", request_topic=topic,
                group_id="limit-" + unique("g"), max_per_customer=4).start()
    c = Client(stack, request_topic=topic)
    try:
        event_id, (section_id,) = new_event(c, capacity=100)
        assert c.request(book(event_id, section_id, 3, customer="eve"))["status"] == "confirmed"
        assert c.request(hold(event_id, section_id, 1, customer="eve"))["status"] == "held"
        over = c.request(book(event_id, section_id, 1, customer="eve"))
        assert over["status"] == "rejected" and over["error"]["code"] == "QUANTITY_LIMIT"
        assert c.request(book(event_id, section_id, 4, customer="mallory"))["status"] == "confirmed"
    finally:
        c.close()
        assert t.stop() == 0


def test_confirm_racing_expiry_ends_in_exactly_one_state(client, stack):
    """Confirms sent right as their holds expire: each hold ends confirmed
    (with one booking) or expired (seats back), never both, never neither."""
    event_id, (section_id,) = new_event(client, capacity=1000)
    holds = [client.request(hold(event_id, section_id, 1, ttl_s=1)) for _ in range(40)]
    # Aim the confirms at the expiry instant.
    first_expiry = time.time() + 0.95
    while time.time() < first_expiry:
        time.sleep(0.01)
    confirms = [simple("confirm", hold_id=h["hold_id"]) for h in holds]
    for c in confirms:
        client.send(c, key=str(section_id))
    outcomes = [client.reply(c["request_id"]) for c in confirms]
    time.sleep(2)  # let the reaper finish the rest
    for h, outcome in zip(holds, outcomes):
        status = stack.query("SELECT status FROM holds WHERE id = %s", (h["hold_id"],))[0][0]
        bookings = stack.query("SELECT count(*) FROM bookings WHERE hold_id = %s",
                               (h["hold_id"],))[0][0]
        if outcome["status"] == "ok":
            assert status == "confirmed" and bookings == 1
        else:
            assert outcome["error"]["code"] == "HOLD_EXPIRED", outcome
            assert status == "expired" and bookings == 0
    assert invariant_violations(stack) == []
    assert remaining(stack, section_id) == 1000 - sum(o["status"] == "ok" for o in outcomes)


def test_mixed_flood_keeps_the_invariant(stack, ticketd):
    code, out = run_flood(stack, "--fresh-seed", "--event", "7001", "--section", "7001",
                          "--capacity", "300", "-n", "2000", "-q", "1", "-c", "200",
                          "--mix", "40", "--ttl", "2", "-t", "120")
    # exit 0: every request answered, no oversell (ticket-flood checks both)
    assert code == 0, out
    assert re.search(r"^\s+held\s+[1-9]", out, re.M), out
    assert invariant_violations(stack) == []
    assert duplicate_executions(stack) == []
    # Every request has exactly one outcome in the database.
    rows = stack.query("SELECT count(*), count(DISTINCT idempotency_key) FROM processed_requests "
                       "WHERE request_id LIKE 'flood-%%'")
    assert rows[0][0] == rows[0][1]
