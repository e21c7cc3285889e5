"""Helpers for the system tests: the stack, ticketd processes, and a
client that sends requests through the real broker and collects replies."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import psycopg2
import psycopg2.extensions
import psycopg2.sql
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contract import contract

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REQUESTS = "bookings.requests"
REPLIES = "bookings.replies"
DEAD_LETTER = "bookings.dead-letter"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export "):
                line = line[len("export "):]
            if "=" not in line or line.startswith("#"):
                continue
            key, value = line.split("=", 1)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key] = value
    return env


def without_settings(environ):
    """environ without ticketd's settings or libpq's password variables:
    for a process that must take its settings from a file alone."""
    return {k: v for k, v in environ.items()
            if not k.startswith("TICKETD_") and k not in ("PGPASSWORD", "PGPASSFILE")}


class Stack:
    """The throwaway PostgreSQL and Kafka of scripts/stack.sh; secure=True
    adds the SASL_SSL listener and the TLS + SCRAM role (its stack.env
    then names the secured endpoints, the plain ones as STACK_PLAIN_*);
    replicated=True makes three Kafka nodes and a PostgreSQL primary with
    a synchronous standby (tests/replicated/)."""

    def __init__(self, state_dir, secure=False, replicated=False):
        self.state_dir = state_dir
        self.secure = secure
        self.replicated = replicated
        self.env = {}

    def script(self, *args, timeout=300):
        env = dict(os.environ, STACK_DIR=self.state_dir)
        if self.secure:
            env["TICKETD_STACK_SECURE"] = "1"
        if self.replicated:
            env["TICKETD_STACK_REPLICATED"] = "1"
        proc = subprocess.run(
            [os.path.join(REPO, "scripts", "stack.sh"), *args],
            env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(
                "scripts/stack.sh %s failed (exit %d):\n%s\n%s" %
                (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
        return proc.stdout

    def up(self):
        self.script("up")
        self.env = read_env_file(os.path.join(self.state_dir, "stack.env"))
        return self

    def down(self):
        self.script("down")

    @property
    def brokers(self):
        return self.env.get("STACK_PLAIN_BROKERS", self.env["TICKETD_BROKERS"])

    @property
    def pg(self):
        return self.env.get("STACK_PLAIN_PG", self.env["TICKETD_PG"])

    def db(self):
        conn = psycopg2.connect(self.pg)
        conn.autocommit = True
        return conn

    def query(self, sql, params=()):
        with self.db() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
        conn.close()
        return rows

    def create_topic(self, name, partitions=4):
        # Warnings and errors only: at info, librdkafka prints a line of
        # its own ("Purging 1 unserved events from background queue") when
        # an admin client goes away with an event nobody asked for.
        admin = AdminClient({"bootstrap.servers": self.brokers, "log_level": 4})
        futures = admin.create_topics([NewTopic(
            name, partitions, 1, config={"max.message.bytes": "16777216"})])
        for f in futures.values():
            try:
                f.result(30)
            except Exception as e:  # already there is fine
                if "TOPIC_ALREADY_EXISTS" not in str(e):
                    raise



def session_stack(name, what, **kwargs):
    """For a session fixture (yield from it): a fresh Stack(**kwargs) under
    build/<name> for the whole run, stopped at its end. A stack that cannot
    start fails the run and says why: a system test never skips."""
    import pytest  # here: scripts/bench.py imports this file without pytest

    state_dir = os.path.join(REPO, "build", name)
    shutil.rmtree(state_dir, ignore_errors=True)
    os.makedirs(state_dir)
    s = Stack(state_dir, **kwargs)
    try:
        s.up()
    except Exception as e:
        try:
            s.down()
        finally:
            pytest.fail("cannot start %s: %s" % (what, e), pytrace=False)
    yield s
    s.down()

class Ticketd:
    """One ticketd process with its own HTTP port and log file. With config
    (a settings file) the stack's plain addresses are not passed: brokers,
    pg_conninfo and the security settings come from that file."""

    def __init__(self, stack, name="ticketd", config=None, **settings):
        self.stack = stack
        self.name = name
        self.config = config or os.path.join(REPO, "etc", "ticketd.conf")
        self.http_port = free_port()
        self.log_path = os.path.join(stack.state_dir, name + ".log")
        if config:
            self.env = without_settings(os.environ)
        else:
            self.env = dict(os.environ, TICKETD_BROKERS=stack.brokers,
                            TICKETD_PG=stack.pg)
        self.env.update({
            "TICKETD_HTTP_PORT": str(self.http_port),
            "TICKETD_GROUP_ID": "ticketd-test",
            "TICKETD_REAPER_INTERVAL_MS": "200",
            "TICKETD_DRAIN_TIMEOUT_MS": "10000",
        })
        for key, value in settings.items():
            self.env["TICKETD_" + key.upper()] = str(value)
        self.proc = None

    def start(self, wait_ready=True, timeout=60):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(REPO, "ticketd"), "-c", self.config],
            env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %d during start-up:\n%s" %
                                   (self.name, self.proc.returncode, self.log_tail()))
            status, _ = self.http("/readyz")
            if status == 200 and self.partitions() > 0:
                return
            time.sleep(0.2)
        raise RuntimeError("%s not ready within %ds:\n%s" %
                           (self.name, timeout, self.log_tail()))

    def partitions(self):
        status, body = self.http("/readyz")
        try:
            return json.loads(body).get("assigned_partitions", 0)
        except ValueError:
            return 0

    def http(self, path, method="GET", timeout=10):
        """(status, body) of one request; status 0 when nothing answered.
        Every answer is checked against docs/openapi.yaml first."""
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.http_port, path), method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, headers, body = resp.status, dict(resp.headers), resp.read().decode()
        except urllib.error.HTTPError as e:
            status, headers, body = e.code, dict(e.headers), e.read().decode()
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            return 0, ""
        errors = contract().http_errors(method, path, status, headers, body)
        assert not errors, "%s %s -> %d breaks docs/openapi.yaml: %s\n%s" % (
            method, path, status, "; ".join(errors), body[:500])
        return status, body

    def http_json(self, path):
        status, body = self.http(path)
        return status, (json.loads(body) if body else None)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self):
        return self.stop(signal.SIGKILL)

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


class Client:
    """Sends requests to the request topic and collects every reply and
    dead-letter message from the moment it was created."""

    def __init__(self, stack, request_topic=REQUESTS, reply_topic=REPLIES):
        self.stack = stack
        self.request_topic = request_topic
        self.reply_topic = reply_topic
        self.producer = Producer({"bootstrap.servers": stack.brokers,
                                  "linger.ms": 1, "acks": "all",
                                  "message.max.bytes": 20000000})
        self.replies = []
        self.dead_letters = []
        # docs/asyncapi.yaml against the traffic: what this client sent
        # (by correlation id, else request_id) with the schema's verdict,
        # and every disagreement seen; close() fails on any.
        self.verdicts = {}
        self.violations = []
        self.checked = {"requests": 0, "replies": 0, "dead_letters": 0}
        self.lock = threading.Condition()
        self.running = True
        self.consumer = Consumer({
            "bootstrap.servers": stack.brokers,
            "group.id": "system-tests",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        })
        self.consumer.assign(self._ends([reply_topic, DEAD_LETTER]))
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def _ends(self, topics):
        """The end offset of every partition; a topic just created may need
        a moment before every partition has its leader."""
        parts = []
        for topic in topics:
            md = self.consumer.list_topics(topic, timeout=30)
            for p in md.topics[topic].partitions:
                deadline = time.time() + 30
                while True:
                    try:
                        low, high = self.consumer.get_watermark_offsets(
                            TopicPartition(topic, p), timeout=10)
                        break
                    except Exception:
                        if time.time() > deadline:
                            raise
                        time.sleep(0.2)
                parts.append(TopicPartition(topic, p, high))
        return parts

    def _collect(self):
        while self.running:
            msg = self.consumer.poll(0.05)
            if msg is None or msg.error():
                continue
            record = {
                "topic": msg.topic(),
                "partition": msg.partition(),
                "key": msg.key(),
                "value": msg.value(),
                "headers": dict(msg.headers() or []),
            }
            try:
                record["json"] = json.loads(msg.value()) if msg.value() else None
            except ValueError:
                record["json"] = None
            try:
                self._check(record, msg.headers() or [])
            except Exception as e:  # a checker fault must fail the test, not kill this thread
                self.violations.append("checking %s[%d] raised %r" % (
                    record["topic"], record["partition"], e))
            with self.lock:
                if msg.topic() == DEAD_LETTER:
                    self.dead_letters.append(record)
                else:
                    self.replies.append(record)
                self.lock.notify_all()

    def _check(self, record, headers):
        """A reply or dead letter against docs/asyncapi.yaml; a reply to a
        request this client sent also against the schema's verdict on that
        request: refused by the schema <=> answered `invalid`."""
        c = contract()
        where = "%s[%d]" % (record["topic"], record["partition"])
        if record["topic"] == DEAD_LETTER:
            errors = c.dead_letter_errors(headers, record["value"])
            self.checked["dead_letters"] += 1
        elif isinstance(record["json"], dict) and set(record["json"]) == {"warm_up"}:
            return  # ticket-flood's probe of the reply topic, not a reply
        else:
            reply = record["json"]
            errors = (c.reply_errors(reply) if isinstance(reply, dict)
                      else ["reply is not a JSON object: %r" % record["value"][:200]])
            errors += c.header_errors(headers, c.reply_headers)
            self.checked["replies"] += 1
            verdict = self.verdicts.get(record["headers"].get("kafka_correlationId"))
            if verdict is None and isinstance(reply, dict):
                verdict = self.verdicts.get(reply.get("request_id"))
            if verdict is not None and isinstance(reply, dict):
                refused = bool(verdict)
                status = reply.get("status")
                message = (reply.get("error") or {}).get("message", "")
                # The one documented way a request the schema allows is
                # answered invalid: the database refused it (README).
                if refused and status != "invalid":
                    errors.append("the schema refuses the request (%s) but ticketd "
                                  "answered %s" % ("; ".join(verdict)[:300], status))
                elif (not refused and status == "invalid" and
                      not message.startswith("the database refused")):
                    errors.append("the schema allows the request but ticketd "
                                  "answered invalid: %s" % message)
        if errors:
            self.violations.append("%s %r: %s" % (where, record["value"][:300],
                                                  "; ".join(errors)))

    def close(self):
        self.running = False
        self.thread.join(5)
        self.consumer.close()
        self.producer.flush(10)
        assert not self.violations, (
            "%d message(s) disagree with docs/asyncapi.yaml:\n%s" %
            (len(self.violations), "\n".join(self.violations[:10])))

    def send_raw(self, value, key=None, headers=None, topic=None):
        """Produce one message; its verdict under docs/asyncapi.yaml is
        kept for the reply's check."""
        verdict = contract().request_errors(value)
        self.checked["requests"] += 1
        correlation = (headers or {}).get("kafka_correlationId")
        try:
            rid = json.loads(value).get("request_id")
        except (ValueError, AttributeError, TypeError):
            rid = None
        with self.lock:
            if correlation is not None:
                self.verdicts[correlation if isinstance(correlation, bytes)
                              else correlation.encode()] = verdict
            elif isinstance(rid, str):
                self.verdicts[rid] = verdict
        errors = []

        def delivered(err, msg):
            if err:
                errors.append(err)
        self.producer.produce(topic or self.request_topic, value=value,
                              key=key, headers=headers or {}, on_delivery=delivered)
        self.producer.flush(30)
        assert not errors, "produce failed: %s" % errors

    def send(self, request, key=None, headers=None, correlation=None):
        """Send a request dict, keyed by its section like real clients do,
        with Spring's reply headers."""
        if key is None and "section_id" in request:
            key = str(request["section_id"])
        hdrs = {"kafka_replyTopic": self.reply_topic.encode()}
        hdrs["kafka_correlationId"] = (correlation if correlation is not None
                                       else request.get("request_id", "").encode())
        hdrs.update(headers or {})
        self.send_raw(json.dumps(request).encode(), key=key, headers=hdrs)

    def wait_for(self, predicate, count=1, timeout=30, source="replies"):
        deadline = time.time() + timeout
        with self.lock:
            while True:
                found = [r for r in getattr(self, source) if predicate(r)]
                if len(found) >= count:
                    return found
                left = deadline - time.time()
                if left <= 0:
                    return found
                self.lock.wait(left)

    def replies_for(self, request_id, count=1, timeout=30):
        return self.wait_for(
            lambda r: r["json"] and r["json"].get("request_id") == request_id,
            count, timeout)

    def reply(self, request_id, timeout=30):
        found = self.replies_for(request_id, 1, timeout)
        assert found, "no reply to %s within %ds" % (request_id, timeout)
        return found[0]["json"]

    def request(self, request, timeout=30, **kw):
        self.send(request, **kw)
        return self.reply(request["request_id"], timeout)


def unique(prefix="t"):
    return "%s-%d-%d" % (prefix, os.getpid(), time.monotonic_ns())


def run_flood(stack, *args, timeout=600, pg=None, config=None, env=None):
    """ticket-flood against the stack's plain addresses, or with config (a
    settings file) or env (the whole environment) instead."""
    if env is None and config:
        env = without_settings(os.environ)
        args = ("--config", config) + args
    elif env is None:
        env = dict(os.environ, TICKETD_BROKERS=stack.brokers, TICKETD_PG=pg or stack.pg)
    proc = subprocess.run([os.path.join(REPO, "ticket-flood"), "--quiet", *args],
                          env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def pg_execute(conninfo, statement, params=()):
    """One statement outside any transaction block (CREATE DATABASE needs
    that; Stack.query's `with conn` opens one); returns its rows."""
    conn = psycopg2.connect(conninfo)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@contextlib.contextmanager
def fresh_database(stack):
    """A new database on the stack's server with db/schema.sql applied;
    yields its conninfo, drops it afterwards (WITH (FORCE), so that a
    backend still on its way out does not keep it)."""
    name = unique("fresh").replace("-", "_")
    ident = psycopg2.sql.Identifier(name)
    pg_execute(stack.pg, psycopg2.sql.SQL("CREATE DATABASE {}").format(ident))
    try:
        conninfo = psycopg2.extensions.make_dsn(stack.pg, dbname=name)
        subprocess.run(["psql", conninfo, "-v", "ON_ERROR_STOP=1", "-q", "-f",
                        os.path.join(REPO, "db", "schema.sql")],
                       check=True, capture_output=True)
        yield conninfo
    finally:
        pg_execute(stack.pg, psycopg2.sql.SQL(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))


def invariant_violations(stack):
    return stack.query("SELECT section_id, capacity, remaining, booked, held "
                       "FROM section_invariant WHERE NOT ok")


def duplicate_executions(stack):
    return stack.query("SELECT kind, request_key, executions FROM duplicate_executions")
