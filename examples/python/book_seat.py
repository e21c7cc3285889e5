#!/usr/bin/env python3
"""Book seats through ticketd and wait for the reply (confluent-kafka).

    TICKETD_BROKERS=127.0.0.1:9092 python3 book_seat.py EVENT_ID SECTION_ID QUANTITY CUSTOMER

Prints the reply (JSON) and exits 0 when one came within the timeout,
1 otherwise. Copy it: nothing here is specific to this repository."""

import json
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

BROKERS = os.environ.get("TICKETD_BROKERS", "127.0.0.1:9092")
REQUESTS, REPLIES = "bookings.requests", "bookings.replies"
TIMEOUT_S = float(os.environ.get("TICKETD_TIMEOUT_S", "10"))


def main(event_id, section_id, quantity, customer):
    request_id = "py-" + uuid.uuid4().hex
    request = {"type": "book", "request_id": request_id, "event_id": int(event_id),
               "section_id": int(section_id), "quantity": int(quantity),
               "customer": customer}
    # Listen before sending: start at the end of every reply partition.
    consumer = Consumer({"bootstrap.servers": BROKERS, "group.id": "py-" + request_id,
                         "enable.auto.commit": False})
    partitions = consumer.list_topics(REPLIES, timeout=10).topics[REPLIES].partitions
    consumer.assign([TopicPartition(REPLIES, p, consumer.get_watermark_offsets(
        TopicPartition(REPLIES, p), timeout=10)[1]) for p in partitions])
    producer = Producer({"bootstrap.servers": BROKERS, "acks": "all"})
    # Keyed by section: one section's requests stay in order. The headers
    # are Spring's request/reply convention; ticketd echoes the id.
    producer.produce(REQUESTS, json.dumps(request).encode(), key=str(section_id),
                     headers={"kafka_replyTopic": REPLIES,
                              "kafka_correlationId": request_id})
    producer.flush(10)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            if dict(msg.headers() or []).get("kafka_correlationId") == request_id.encode():
                print(msg.value().decode())
                return 0
        print("no reply to %s within %.0f s" % (request_id, TIMEOUT_S), file=sys.stderr)
        return 1
    finally:
        consumer.close()


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
