"""examples/ run against the real stack: the Python client (confluent-kafka),
the Spring client (ReplyingKafkaTemplate, and its dead-letter reader), and
the README's kcat recipe (issue 17)."""

import json
import os
import re
import subprocess

from harness import REPLIES, REPO, unique
from test_booking import new_event
from test_contract import own_stack_ticketd, produce_to

SPRING = os.path.join(REPO, "examples", "spring")
MAVEN_REPO = os.path.join(REPO, ".cache", "maven-examples")


def booked(stack, request_id_prefix, customer):
    return stack.query("SELECT count(*), sum(quantity) FROM bookings b"
                       " JOIN processed_requests p ON p.idempotency_key = b.request_key"
                       " WHERE b.customer = %s AND p.request_id LIKE %s",
                       (customer, request_id_prefix + "%"))


def test_python_example_books_and_gets_its_reply(client, stack):
    event_id, (section_id,) = new_event(client, capacity=10)
    customer = unique("py") + "@example.com"
    run = subprocess.run(
        ["/usr/bin/python3", os.path.join(REPO, "examples", "python", "book_seat.py"),
         str(event_id), str(section_id), "2", customer],
        env=dict(os.environ, TICKETD_BROKERS=stack.brokers),
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    reply = json.loads(run.stdout)
    assert reply["status"] == "confirmed" and reply["quantity"] == 2, reply
    assert reply["request_id"].startswith("py-")
    assert booked(stack, "py-", customer) == [(1, 2)]


def spring_build():
    """Compile the example offline: scripts/deps.sh fetched its artifacts
    into .cache/maven-examples once."""
    run = subprocess.run(
        ["mvn", "-o", "-q", "-B", "-Dstyle.color=never", "-Dmaven.repo.local=" + MAVEN_REPO,
         "-f", os.path.join(SPRING, "pom.xml"), "package", "dependency:copy-dependencies",
         "-DoutputDirectory=target/lib"],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def spring_run(stack, main, *args):
    classpath = os.path.join(SPRING, "target", "classes") + ":" + \
        os.path.join(SPRING, "target", "lib", "*")
    return subprocess.run(
        ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath,
         "example." + main, *args],
        env=dict(os.environ, TICKETD_BROKERS=stack.brokers),
        capture_output=True, text=True, timeout=120)


def test_spring_example_books_and_reads_a_dead_letter(client, stack):
    spring_build()
    event_id, (section_id,) = new_event(client, capacity=10)
    customer = unique("spring") + "@example.com"
    run = spring_run(stack, "BookSeat", str(event_id), str(section_id), "3", customer)
    assert run.returncode == 0, run.stdout + run.stderr
    reply = json.loads(run.stdout.strip().splitlines()[-1])
    assert reply["status"] == "confirmed" and reply["quantity"] == 3, reply
    assert booked(stack, "spring-", customer) == [(1, 3)]
    # A Spring consumer of the dead-letter topic reads ticketd's dead
    # letter with Spring's own header names and decoding.
    with own_stack_ticketd(stack, "springdlt") as (t, c, requests, dead):
        produce_to(c, requests, 2, b"{not json", [("kafka_correlationId", b"sp")])
        run = spring_run(stack, "DeadLetters", dead, "1")
        assert run.returncode == 0, run.stdout + run.stderr
        line = run.stdout.strip().splitlines()[-1]
        fields = dict(kv.split("=", 1) for kv in re.findall(r"(\S+=\S+)", line))
        assert fields["partition"] == "2" and fields["original-partition"] == "2", line
        assert fields["original-topic"] == requests and fields["original-offset"] == "0"
        assert fields["original-timestamp-type"] == "CreateTime"
        assert fields["consumer-group"] == t.env["TICKETD_GROUP_ID"]
        assert fields["exception-fqcn"] == "ticketd.MALFORMED_JSON"
        assert int(fields["original-timestamp"]) > 0
        assert "exception-message=MALFORMED_JSON: " in line, line


def readme_kcat_recipe():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    block = text.split("With kcat", 1)[1].split("\n\n", 2)[1]
    lines = [line[4:] for line in block.splitlines()]
    assert lines[0] == ". .run/stack.env", lines
    wait = [i for i, line in enumerate(lines) if line.startswith("sleep ")]
    assert len(wait) == 1, lines
    return lines[1:wait[0]], lines[wait[0] + 1:]


def test_readme_kcat_recipe_prints_exactly_its_reply(client, stack):
    """Other replies (from earlier tests, one just before and one just
    after) are on the topic; the recipe prints the one reply to its own
    request. The test waits for that reply instead of the recipe's sleep."""
    send, read = readme_kcat_recipe()
    env = dict(os.environ, TICKETD_BROKERS=stack.brokers)

    def noise():
        client.request({"type": "book", "request_id": unique("noise"), "event_id": 99,
                        "section_id": 100, "quantity": 1, "customer": "noise@example.com"})
    noise()
    first = subprocess.run(["bash", "-euo", "pipefail", "-c",
                            "\n".join(send) + '\necho "$rid $since"\n'],
                           env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    rid, since = first.stdout.split()[-2:]
    assert client.replies_for(rid), "ticketd did not answer the recipe's request"
    noise()
    second = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(read)],
                            env=dict(env, rid=rid, since=since),
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    out = second.stdout.strip().splitlines()
    assert len(out) == 1, out
    reply = json.loads(out[0])
    assert reply["request_id"] == rid and reply["status"] in ("confirmed", "rejected")
