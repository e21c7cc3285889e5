"""Secured connections (issue 18): Kafka over SASL_SSL (SCRAM-SHA-512 and
PLAIN), PostgreSQL over TLS with SCRAM, refusals that say what is wrong,
and no password in any output. All on the session stack, which conftest
makes with TICKETD_STACK_SECURE=1. The secured settings are the blocks of
docs/security.md, with only the host names and paths made local.

Also the issue 14 defects that belong here: --print-config printed
passwords, and /readyz could take two connection timeouts."""

import json
import os
import re
import socket
import stat
import subprocess
import time

import psycopg2
import pytest

from harness import (REPO, Ticketd, duplicate_executions,
                     invariant_violations, run_flood, unique,
                     without_settings)

DOC = os.path.join(REPO, "docs", "security.md")


def doc_settings(name):
    """The settings block of docs/security.md marked <!-- settings: name -->."""
    with open(DOC) as f:
        text = f.read()
    m = re.search(r"<!-- settings: %s -->\n```\n(.*?)```" % re.escape(name), text, re.S)
    assert m, "no settings block %s in docs/security.md" % name
    return m.group(1)


def local(stack, text):
    """A docs block with the managed services' names made the local stack's."""
    env = stack.env
    pg_port = re.search(r"port=(\d+)", env["TICKETD_PG"]).group(1)
    for doc, here in (
            ("kafka-1.example.com:9094,kafka-2.example.com:9094", env["TICKETD_BROKERS"]),
            ("/etc/ticketd/kafka-ca.pem", env["STACK_CA_FILE"]),
            ("/etc/ticketd/pg-ca.pem", env["STACK_CA_FILE"]),
            ("/etc/ticketd/kafka-password", env["TICKETD_KAFKA_SASL_PASSWORD_FILE"]),
            ("/etc/ticketd/pgpass", env["TICKETD_PG_PASSFILE"]),
            ("host=db.example.com port=5432", "host=127.0.0.1 port=%s" % pg_port),
            ("user=ticketd ", "user=%s " % env["STACK_PG_USER"]),
            ("sasl.username=ticketd", "sasl.username=%s" % env["STACK_KAFKA_USER"])):
        text = text.replace(doc, here)
    assert "example.com" not in text and "/etc/ticketd" not in text, text
    return text


def write_conf(stack, path, kafka="kafka-scram", pg="pg-tls", extra="", edit=None):
    """A settings file: the docs' Kafka and PostgreSQL blocks, made local,
    then edit(text) if given, then extra lines."""
    text = local(stack, doc_settings(kafka)) + local(stack, doc_settings(pg))
    if edit:
        text = edit(text)
    path.write_text(text + extra)
    return str(path)


def secret(stack, name):
    with open(os.path.join(stack.env["STACK_DIR"], "secrets", name)) as f:
        return f.readline().strip()


def owner_only(path, text):
    """A file only its owner may read, holding text."""
    path.write_text(text)
    os.chmod(path, 0o600)
    return str(path)


def summary(out):
    m = re.search(r"^summary (.*)$", out, re.M)
    assert m, out
    fields = dict(kv.split("=", 1) for kv in m.group(1).split())
    return fields


OUTCOMES = ("sent", "answered", "no_reply", "duplicate_replies", "confirmed",
            "held", "ok", "rejected", "invalid")


@pytest.fixture(scope="module")
def secured(stack, tmp_path_factory):
    """One ticketd over SASL_SSL (SCRAM-SHA-512) and TLS + SCRAM, on a
    request topic of its own, at log_level debug with librdkafka's
    security, broker and configuration debug contexts on: the secret-grep
    test reads everything it ever logged."""
    tmp = tmp_path_factory.mktemp("secured")
    topic = "requests-secured-" + unique("t")
    stack.create_topic(topic, partitions=4)
    conf = write_conf(stack, tmp / "ticketd.conf", extra=(
        'log_level = "debug";\n'
        'consumer_properties = [ "debug=security,broker,conf,generic" ];\n'
        'producer_properties = [ "debug=security,broker,conf,generic" ];\n'))
    t = Ticketd(stack, name="ticketd-secured", config=conf, request_topic=topic,
                group_id="secured-" + unique("g"))
    try:
        t.start()
    except Exception:
        t.stop()
        raise
    t.topic = topic
    t.conf = conf
    t.outputs = []  # everything shown to a user, for the secret grep
    yield t
    assert t.stop() == 0, t.log_tail()


def secured_flood(secured, *args):
    code, out = run_flood(secured.stack, "--request-topic", secured.topic, *args,
                          config=secured.conf)
    secured.outputs.append(out)
    return code, out


def test_stack_env_names_files_not_passwords(stack):
    env = stack.env
    assert env["TICKETD_STACK_SECURE"] == "1"
    secrets_dir = os.path.join(env["STACK_DIR"], "secrets")
    assert stat.S_IMODE(os.stat(secrets_dir).st_mode) == 0o700
    for name in ("kafka-password", "pg-password", "pgpass"):
        assert stat.S_IMODE(os.stat(os.path.join(secrets_dir, name)).st_mode) == 0o600
    with open(os.path.join(env["STACK_DIR"], "stack.env")) as f:
        text = f.read()
    for name in ("kafka-password", "pg-password"):
        assert secret(stack, name) not in text
    assert "sslmode=verify-full" in env["TICKETD_PG"]
    assert "security.protocol=SASL_SSL" in env["TICKETD_KAFKA_PROPERTIES"]
    # The plain endpoints the other tests use are still there, and plain.
    assert env["STACK_PLAIN_BROKERS"] != env["TICKETD_BROKERS"]
    assert "sslmode=disable" in stack.pg


def test_secured_flood_gives_the_plain_outcomes(stack, ticketd, secured):
    """The same floods through the secured ticketd and through the plain
    one give the same outcomes, and the invariant holds."""
    floods = [
        ("--fresh-seed", "--expect-confirmed", "1"),  # the seed's 10 for 5 seats
        ("--fresh-seed", "--capacity", "300", "-n", "1000", "-q", "1", "-c", "200"),
        ("--fresh-seed", "--capacity", "100000", "-n", "1000", "-q", "1", "-c", "200",
         "--mix", "40", "--ttl", "120"),
    ]
    for i, args in enumerate(floods):
        where = ["--event", str(18100 + i), "--section", str(18100 + i)]
        code, plain = run_flood(stack, *args, *where)
        assert code == 0, plain
        where = ["--event", str(18200 + i), "--section", str(18200 + i)]
        code, out = secured_flood(secured, *args, *where)
        assert code == 0, out
        assert "invariant ok" in out, out
        got, want = summary(out), summary(plain)
        same = OUTCOMES
        if "--mix" in args:
            # Which books get a cancel depends on how replies and sends
            # interleave (ticket-flood cancels request numbers divisible by
            # 5, follow-ups included); every follow-up is answered ok.
            same = [k for k in OUTCOMES if k not in ("sent", "answered", "ok")]
            for fields in (got, want):
                assert int(fields["ok"]) == int(fields["sent"]) - 1000, (out, plain)
        assert [got[k] for k in same] == [want[k] for k in same], (out, plain)
        rows = stack.query("SELECT count(*), count(DISTINCT idempotency_key) "
                           "FROM processed_requests WHERE request_id LIKE %s",
                           ("flood-%s-%%" % got["run"],))
        assert rows[0][0] == rows[0][1] == int(got["sent"]), rows
    assert summary(out)["held"] != "0"
    assert invariant_violations(stack) == []
    assert duplicate_executions(stack) == []
    # Its sessions are the TLS role's, over TLS.
    rows = stack.query("SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a "
                       "JOIN pg_stat_ssl s USING (pid) WHERE a.usename = %s",
                       (stack.env["STACK_PG_USER"],))
    assert rows[0][0] >= 2 and rows[0][0] == rows[0][1], rows


def test_stack_env_alone_is_a_secured_client(stack, secured):
    """Sourcing stack.env is enough for ticket-flood to go through SASL_SSL
    and TLS + SCRAM (what `make up` does with ticketd)."""
    env = without_settings(os.environ)
    env.update({k: v for k, v in stack.env.items()
                if k.startswith("TICKETD_") and k not in ("TICKETD_HTTP_PORT", "TICKETD_HTTP")})
    code, out = run_flood(stack, "--request-topic", secured.topic, "--fresh-seed",
                          "--event", "18300", "--section", "18300",
                          "--expect-confirmed", "1", env=env)
    secured.outputs.append(out)
    assert code == 0, out


def test_plain_sasl_mechanism(stack, tmp_path):
    """The docs' PLAIN block works as written (same broker, same user)."""
    topic = "requests-plain-" + unique("t")
    stack.create_topic(topic, partitions=1)
    conf = write_conf(stack, tmp_path / "plain.conf", kafka="kafka-plain")
    t = Ticketd(stack, name="ticketd-sasl-plain", config=conf, request_topic=topic,
                group_id="plain-" + unique("g")).start()
    try:
        code, out = run_flood(stack, "--request-topic", topic, "--fresh-seed",
                              "--event", "18400", "--section", "18400",
                              "--expect-confirmed", "1", config=conf)
        assert code == 0, out
    finally:
        assert t.stop() == 0, t.log_tail()


def test_passwords_from_the_environment(stack, tmp_path):
    """The other form docs/security.md gives: the passwords in the
    environment (TICKETD_KAFKA_SASL_PASSWORD, libpq's PGPASSWORD), no
    password file; and channel_binding=require, which it suggests."""
    topic = "requests-envpw-" + unique("t")
    stack.create_topic(topic, partitions=1)
    conf = write_conf(stack, tmp_path / "env.conf", edit=lambda t: t.replace(
        "sslrootcert=", "channel_binding=require sslrootcert="))
    passwords = {"TICKETD_KAFKA_SASL_PASSWORD": secret(stack, "kafka-password"),
                 "PGPASSWORD": secret(stack, "pg-password"),
                 "TICKETD_KAFKA_SASL_PASSWORD_FILE": "", "TICKETD_PG_PASSFILE": ""}
    t = Ticketd(stack, name="ticketd-env-passwords", config=conf, request_topic=topic,
                group_id="envpw-" + unique("g"))
    t.env.update(passwords)
    t.start()
    try:
        env = dict(without_settings(os.environ), **passwords)
        code, out = run_flood(stack, "--config", conf, "--request-topic", topic,
                              "--fresh-seed", "--event", "18450", "--section", "18450",
                              "--expect-confirmed", "1", env=env)
        assert code == 0, out
        no_secret(stack, out, "ticket-flood")
    finally:
        assert t.stop() == 0, t.log_tail()
    no_secret(stack, t.log_tail(10000), "ticketd's log")


# ------------------------------------------------------------- refusals

def other_ca(tmp_path):
    """A CA that signed nothing the stack serves."""
    key, crt = tmp_path / "other.key", tmp_path / "other.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
                    str(crt), "-days", "1", "-subj", "/CN=not the stack's CA"],
                   check=True, capture_output=True)
    return str(crt)


WRONG = "Planted-wrong-" + unique("pw")


def refusal_cases(stack, tmp_path):
    """name -> (edit of the docs' settings text, service, what the message says)."""
    ca = stack.env["STACK_CA_FILE"]
    wrong_kafka = owner_only(tmp_path / "wrong-kafka", WRONG + "\n")
    wrong_pg = owner_only(tmp_path / "wrong-pgpass", "*:*:*:*:%s\n" % WRONG)
    other = other_ca(tmp_path)
    kafka_pw = stack.env["TICKETD_KAFKA_SASL_PASSWORD_FILE"]
    passfile = stack.env["TICKETD_PG_PASSFILE"]
    return {
        "kafka-wrong-password": (
            lambda t: t.replace(kafka_pw, wrong_kafka), "Kafka", "SASL authentication failed"),
        "kafka-unknown-user": (
            lambda t: t.replace("sasl.username=ticketd", "sasl.username=nobody-here"),
            "Kafka", "SASL authentication failed"),
        "kafka-untrusted-certificate": (
            lambda t: t.replace("ssl.ca.location=" + ca, "ssl.ca.location=" + other),
            "Kafka", "certificate is not trusted"),
        "kafka-tls-wanted-none-configured": (
            lambda t: t.replace("security.protocol=SASL_SSL", "security.protocol=SASL_PLAINTEXT"),
            "Kafka", "wants TLS"),
        "kafka-mechanism-not-offered": (
            lambda t: t.replace("sasl.mechanisms=SCRAM-SHA-512", "sasl.mechanisms=SCRAM-SHA-256"),
            "Kafka", "does not offer this sasl.mechanisms"),
        "pg-wrong-password": (
            lambda t: t.replace(passfile, wrong_pg), "PostgreSQL", "password was refused"),
        "pg-unknown-user": (
            lambda t: t.replace("user=ticketd_tls", "user=nobody_here")
            .replace(passfile, wrong_pg), "PostgreSQL", "no such user"),
        "pg-no-password": (
            lambda t: t.replace('pg_passfile = "%s";' % passfile, ""),
            "PostgreSQL", "none was found"),
        "pg-untrusted-certificate": (
            lambda t: t.replace("sslrootcert=" + ca, "sslrootcert=" + other),
            "PostgreSQL", "not signed by a CA in sslrootcert"),
        "pg-certificate-names-another-host": (
            lambda t: t.replace("host=127.0.0.1", "host=ticketd-test.invalid hostaddr=127.0.0.1"),
            "PostgreSQL", "does not name the host"),
        "pg-tls-wanted-none-configured": (
            lambda t: t.replace("sslmode=verify-full", "sslmode=disable"),
            "PostgreSQL", "over TLS only"),
    }


CASES = ["kafka-wrong-password", "kafka-unknown-user", "kafka-untrusted-certificate",
         "kafka-tls-wanted-none-configured", "kafka-mechanism-not-offered",
         "pg-wrong-password", "pg-unknown-user", "pg-no-password",
         "pg-untrusted-certificate", "pg-certificate-names-another-host",
         "pg-tls-wanted-none-configured"]


def no_secret(stack, text, where):
    for planted in (secret(stack, "kafka-password"), secret(stack, "pg-password"), WRONG):
        assert planted not in text, "%s shows a password:\n%s" % (where, text)
        # Nor a good part of one.
        assert planted[-16:] not in text, "%s shows part of a password:\n%s" % (where, text)


@pytest.mark.parametrize("case", CASES)
def test_startup_refusal_names_the_service_and_the_cause(stack, tmp_path, case):
    edit, service, cause = refusal_cases(stack, tmp_path)[case]
    conf = write_conf(stack, tmp_path / "refused.conf", edit=edit)
    env = without_settings(os.environ)
    env.update(TICKETD_HTTP_PORT="0", TICKETD_GROUP_ID="refused-" + unique("g"))
    started = time.time()
    proc = subprocess.run([os.path.join(REPO, "ticketd"), "-c", conf], env=env,
                          capture_output=True, text=True, timeout=60)
    took = time.time() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    line = [l for l in out.splitlines() if "start-up failed" in l]
    assert line, out
    assert "start-up failed: %s: " % service in line[-1], out
    assert cause in line[-1], out
    assert took < 15, (took, out)
    assert "rebalance" not in out, "it joined the group before refusing:\n" + out
    no_secret(stack, out, case)


def test_ticket_flood_refuses_too(stack, tmp_path):
    edit, _, _ = refusal_cases(stack, tmp_path)["kafka-wrong-password"]
    conf = write_conf(stack, tmp_path / "flood.conf", edit=edit)
    code, out = run_flood(stack, "--no-verify", "-n", "1", config=conf, timeout=60)
    assert code == 2, out
    assert "ticket-flood: Kafka: SASL authentication failed" in out, out
    no_secret(stack, out, "ticket-flood")


# ---------------------------------------------------------------- readyz

def test_readyz_says_why_once_the_password_is_rotated(stack, secured):
    """A password changed under a running ticketd: its sessions go on, new
    connections are refused, /readyz is 503 and says why; back to 200 once
    the password is the one in the passfile again."""
    assert secured.http("/readyz")[0] == 200
    role = stack.env["STACK_PG_USER"]
    rotated = "Planted-rotated-" + unique("pw")
    conn = psycopg2.connect(stack.pg)
    conn.autocommit = True
    try:
        conn.cursor().execute("ALTER ROLE %s PASSWORD %%s" % role, (rotated,))
        status, body = secured.http("/readyz")
        secured.outputs.append(body)
        assert status == 503, body
        ready = json.loads(body)
        assert ready["database"] == "refused", body
        assert "password was refused" in ready["database_error"], body
        assert "28P01" in ready["database_error"], body
        assert rotated not in body
    finally:
        conn.cursor().execute("ALTER ROLE %s PASSWORD %%s" % role,
                              (secret(stack, "pg-password"),))
        conn.close()
    deadline = time.time() + 10
    while time.time() < deadline and secured.http("/readyz")[0] != 200:
        time.sleep(0.1)
    status, body = secured.http("/readyz")
    assert status == 200, body
    assert "database_error" not in body


class SilentServer:
    """A loopback port that takes TCP connections and never answers: a
    database host that stopped responding."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def test_readyz_is_bounded_when_the_database_does_not_answer(stack):
    """Issue 14: /readyz took two connection timeouts (2 x 5 s by default)
    against a host that does not answer. Now one check within 500 ms."""
    silent = SilentServer()
    topic = "requests-silentdb-" + unique("t")
    stack.create_topic(topic, partitions=1)
    t = Ticketd(stack, name="ticketd-silent-db", request_topic=topic,
                group_id="silent-" + unique("g"))
    # connect_timeout=2: start-up waits that long for its check (not
    # reachable is not fatal), and the old /readyz took 4 s.
    t.env["TICKETD_PG"] = ("host=127.0.0.1 port=%d dbname=ticketd user=ticketd "
                           "connect_timeout=2" % silent.port)
    try:
        t.start(wait_ready=False)
        deadline = time.time() + 30
        while time.time() < deadline and t.http("/healthz")[0] != 200:
            assert t.proc.poll() is None, t.log_tail()
            time.sleep(0.1)
        assert t.http("/healthz")[0] == 200, t.log_tail()
        for _ in range(3):
            started = time.time()
            status, body = t.http("/readyz", timeout=15)
            took = time.time() - started
            assert status == 503, (status, body)
            assert took < 1.5, "readyz took %.2f s: %s" % (took, body)
            ready = json.loads(body)
            assert ready["database"] == "down", body
            assert "no answer within 500 ms" in ready["database_error"], body
        assert "not reachable" in t.log_tail(200) or "no answer" in t.log_tail(200)
    finally:
        code = t.stop()
        silent.close()
    assert code == 0, t.log_tail()


# ----------------------------------------------------------- secrets

PLANTED = "Planted-" + unique("secret")


def test_print_config_masks_secrets(tmp_path):
    """Issue 14: --print-config printed pg_conninfo and the Kafka
    properties verbatim, passwords included."""
    conf = tmp_path / "planted.conf"
    conf.write_text('pg_conninfo = "postgresql://app:%s-uri@db:5432/ticketd";\n' % PLANTED)
    env = dict(without_settings(os.environ),
               TICKETD_CONSUMER_PROPERTIES="sasl.password=%s-consumer" % PLANTED,
               TICKETD_PRODUCER_PROPERTIES="ssl.key.password=%s-producer,linger.ms=5" % PLANTED)
    outputs = []
    for args in (["-c", str(conf), "--print-config"], ["--print-config"],
                 ["-c", str(conf), "--check-config"]):
        if "-c" not in args:
            env["TICKETD_PG"] = "host=db password=%s-pairs dbname=ticketd" % PLANTED
        proc = subprocess.run([os.path.join(REPO, "ticketd"), *args], env=env,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout + proc.stderr)
        assert PLANTED not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert 'postgresql://app:(hidden)@db:5432/ticketd' in outputs[0]
    assert '"sasl.password=(hidden)"' in outputs[0]
    assert '"ssl.key.password=(hidden)", "linger.ms=5"' in outputs[0]
    assert 'host=db password=(hidden) dbname=ticketd' in outputs[1]


def test_no_password_in_any_output(stack, secured, tmp_path):
    """Plant: the stack's real passwords (recognisable, stack-NAME-...),
    a wrong one, and one in the environment form. Then grep everything a
    user sees: the debug log of the secured ticketd (floods, rebalances,
    librdkafka's security debug, the refused new connections of the
    rotation test), ticket-flood's output, /metrics, /readyz, the HTTP
    views, the replies, --print-config, the refusals."""
    kafka_pw, pg_pw = secret(stack, "kafka-password"), secret(stack, "pg-password")
    assert kafka_pw.startswith("stack-kafka-password-") and pg_pw.startswith("stack-pg-password-")
    outputs = list(secured.outputs)
    ends = reply_ends(stack)
    code, out = secured_flood(secured, "--fresh-seed", "--event", "18500", "--section",
                              "18500", "--capacity", "50", "-n", "100", "-q", "1",
                              "--mix", "30")
    assert code == 0, out
    outputs.append(out)
    run = summary(out)["run"]
    for path in ("/metrics", "/readyz", "/healthz", "/events?limit=500",
                 "/bookings?event_id=18500&limit=500", "/requests/flood-%s-0" % run):
        status, body = secured.http(path)
        assert status == 200, (path, status, body)
        outputs.append(body)
    # The replies, read back over the plain listener.
    replies = read_replies(stack, run, ends)
    assert len(replies) >= 100, len(replies)
    outputs.extend(replies)
    # --print-config of the secured settings, file form and environment form.
    env = without_settings(os.environ)
    outputs.append(subprocess.run([os.path.join(REPO, "ticketd"), "-c", secured.conf,
                                   "--print-config"], env=env, capture_output=True,
                                  text=True, check=True).stdout)
    env.update(TICKETD_KAFKA_SASL_PASSWORD=kafka_pw, PGPASSWORD=pg_pw,
               TICKETD_PG_PASSFILE="", TICKETD_KAFKA_SASL_PASSWORD_FILE="")
    shown = subprocess.run([os.path.join(REPO, "ticketd"), "-c", secured.conf,
                            "--print-config"], env=env, capture_output=True, text=True,
                           check=True).stdout
    assert "the SASL password is set (from TICKETD_KAFKA_SASL_PASSWORD)" in shown
    outputs.append(shown)
    # The whole debug log, and it must be a debug log with librdkafka's
    # security steps in it, or the grep proves little.
    with open(secured.log_path, errors="replace") as f:
        log = f.read()
    assert "level=debug" in log and "SASL" in log and "SSL" in log, log[-2000:]
    outputs.append(log)
    for text in outputs:
        no_secret(stack, text, "an output")


def reply_consumer(stack):
    from confluent_kafka import Consumer
    return Consumer({"bootstrap.servers": stack.brokers, "group.id": unique("grep"),
                     "enable.auto.commit": False})


def reply_ends(stack):
    """The end offset of each partition of bookings.replies."""
    from confluent_kafka import TopicPartition
    consumer = reply_consumer(stack)
    try:
        md = consumer.list_topics("bookings.replies", timeout=30)
        return {p: consumer.get_watermark_offsets(
                    TopicPartition("bookings.replies", p), timeout=10)[1]
                for p in md.topics["bookings.replies"].partitions}
    finally:
        consumer.close()


def read_replies(stack, run, starts):
    """The replies of flood run `run` on bookings.replies, as text, read
    from the offsets in starts to the current ends."""
    from confluent_kafka import TopicPartition
    ends = reply_ends(stack)
    consumer = reply_consumer(stack)
    try:
        consumer.assign([TopicPartition("bookings.replies", p, starts[p]) for p in ends])
        left = {p for p in ends if ends[p] > starts[p]}
        found = []
        deadline = time.time() + 60
        while left and time.time() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            if msg.offset() + 1 >= ends[msg.partition()]:
                left.discard(msg.partition())
            value = msg.value().decode(errors="replace")
            if ("flood-%s-" % run) in value:
                found.append(value)
        assert not left, "replies not read to the end of partitions %s" % left
        return found
    finally:
        consumer.close()
