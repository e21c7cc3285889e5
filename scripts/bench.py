"""The benchmark behind `make bench`: the seed's one-transaction-per-request
design (pgbench), ticketd with batch_max=1, ticketd as shipped, and the
Kafka path alone, on the same broker, database and message count.

Rows 2-4 are driven by ticket-flood; row 1 by pgbench with 16 clients.
Prints one table per workload, the latency line, the readers' lines
(availability read over HTTP while a section holds 1,000,000 bookings,
driven by vegeta), and, when the hot workload ran, ends with
    hot speed-up vs per-request: N.Nx; vs Kafka path: N.Nx
"""

import argparse
import json
import os
import resource
import statistics
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))
from harness import Stack, Ticketd  # noqa: E402


def flood(stack, topic, *args, timeout=900):
    """Run ticket-flood; its summary fields, its output ("out") and the CPU
    seconds it used ("cpu")."""
    env = dict(os.environ, TICKETD_BROKERS=stack.brokers, TICKETD_PG=stack.pg)
    proc = subprocess.Popen([os.path.join(REPO, "ticket-flood"), "--quiet",
                             "--request-topic", topic, *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise RuntimeError("ticket-flood did not finish in %d s" % timeout)
    # communicate() reaped it: the children's usage now includes it.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = re.search(r"^summary (.*)$", out, re.M)
    if not summary:
        raise RuntimeError("ticket-flood said:\n" + out)
    fields = dict(kv.split("=", 1) for kv in summary.group(1).split())
    lat = re.search(r"p50 ([\d.]+)\s+p90 ([\d.]+)\s+p99 ([\d.]+)\s+max ([\d.]+)", out)
    fields["p50"], fields["p99"], fields["max"] = (lat.group(1), lat.group(3), lat.group(4)) if lat else ("-", "-", "-")
    fields["ok_invariant"] = "invariant ok" in out or "--no-verify" in args
    fields["out"] = out
    fields["children_cpu"] = usage.ru_utime + usage.ru_stime
    return fields


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of(pid, reaped=False):
    """CPU seconds process pid used (with reaped: and its children that
    have exited), 0 when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(parts[11]) + int(parts[12])
    if reaped:
        ticks += int(parts[13]) + int(parts[14])
    return ticks / TICKS


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry))
        except (OSError, ValueError, IndexError):
            pass
    return kids


def pg_kind(pid):
    """What a PostgreSQL process is, from the title the server gives it:
    "walwriter", "checkpointer", "autovacuum worker", ..., or "backend"
    for a client's session ("postgres: user db host(port) state")."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            title = f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return "gone"
    title = title.removeprefix("postgres: ")
    for kind in ("checkpointer", "background writer", "walwriter", "walsender",
                 "autovacuum launcher", "autovacuum worker", "logical replication",
                 "archiver"):
        if title.startswith(kind):
            return kind
    return "backend"


def pg_processes(postmaster):
    """{pid: (kind, CPU seconds)} of the live PostgreSQL processes."""
    return {kid: (pg_kind(kid), cpu_of(kid)) for kid in children_of(postmaster)}


class CpuMeter:
    """CPU seconds used since the meter started, per process: a ticketd
    (or the Kafka path's relay), every PostgreSQL process of the stack
    (the postmaster, its live children, and the children it has reaped),
    the broker, and the flood (by the benchmark's own children's usage)."""

    def __init__(self, stack, server_pid=None):
        with open(os.path.join(stack.state_dir, "pg", "data", "postmaster.pid")) as f:
            self.postmaster = int(f.readline())
        with open(os.path.join(stack.state_dir, "kafka", "pid")) as f:
            self.broker = int(f.read())
        self.server_pid = server_pid
        self.start = self.sample()
        self.pg_start = pg_processes(self.postmaster)
        self.pg_start_reaped = cpu_of(self.postmaster, reaped=True)

    def postgres_by_kind(self, requests):
        """Microseconds of PostgreSQL CPU a request since the start, by
        kind of process. A process that exited in between is counted, from
        the postmaster's reaped children, under "postmaster and exited",
        less what it had used before the start."""
        now = pg_processes(self.postmaster)
        kinds = {}
        for pid, (kind, cpu) in now.items():
            before = self.pg_start.get(pid, (kind, 0.0))[1]
            kinds[kind] = kinds.get(kind, 0.0) + cpu - before
        gone_before = sum(cpu for pid, (_, cpu) in self.pg_start.items() if pid not in now)
        kinds["postmaster and exited"] = (cpu_of(self.postmaster, reaped=True)
                                          - self.pg_start_reaped - gone_before)
        return {k: v / max(requests, 1) * 1e6 for k, v in kinds.items()}

    def sample(self):
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        pg = cpu_of(self.postmaster, reaped=True) + sum(
            cpu_of(kid) for kid in children_of(self.postmaster))
        return {"server": cpu_of(self.server_pid) if self.server_pid else 0.0,
                "postgres": pg, "broker": cpu_of(self.broker),
                "flood": children.ru_utime + children.ru_stime}

    def per_request(self, requests, server_cpu=None):
        """Microseconds of CPU a request, per process, since the start.
        server_cpu: the server's own figure when it has exited already."""
        now = self.sample()
        used = {k: now[k] - self.start[k] for k in now}
        if server_cpu is not None:
            used["server"] = server_cpu - self.start["server"]
        us = {k: v / max(requests, 1) * 1e6 for k, v in used.items()}
        us["total"] = sum(us.values())
        return us


def proc_usage(pid):
    with open("/proc/%d/status" % pid) as f:
        hwm = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm / 1024.0, (int(parts[11]) + int(parts[12])) / ticks


def pgbench(stack, script, *args, env=None, timeout=900):
    """Run pgbench with script (its text) and args against the stack's
    database; returns its output and tps, or raises RuntimeError."""
    pg = dict(kv.split("=", 1) for kv in stack.pg.split())
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as f:
        f.write(script)
        f.flush()
        try:
            proc = subprocess.run(["pgbench", "-n", "-f", f.name, *args,
                                   "-h", pg["host"], "-p", pg["port"], "-U", pg["user"],
                                   pg["dbname"]],
                                  env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError("pgbench did not finish in %d s" % timeout)
    tps = re.search(r"tps = ([\d.]+)", proc.stdout)
    if proc.returncode != 0 or not tps:
        raise RuntimeError("pgbench failed:\n" + proc.stdout + proc.stderr)
    return proc.stdout, float(tps.group(1))


def pgbench_floor(stack, event, section, seconds=10, clients=16):
    settle(stack)
    out, tps = pgbench(
        stack,
        "BEGIN;\n"
        "SELECT remaining FROM sections WHERE id = %d FOR UPDATE;\n"
        "WITH taken AS (UPDATE sections SET remaining = remaining - 1"
        " WHERE id = %d AND remaining >= 1 RETURNING id)"
        " INSERT INTO bookings (event_id, section_id, quantity, customer, request_key)"
        " SELECT %d, id, 1, 'pgbench', 'pgbench-' || :client_id || '-' || random() FROM taken;\n"
        "COMMIT;\n" % (section, section, event),
        "-c", str(clients), "-j", "2", "-T", str(seconds), "-r",
        timeout=seconds + 120)
    lat = re.search(r"latency average = ([\d.]+) ms", out)
    return {"rate": tps, "p50": lat.group(1) if lat else "-", "p99": "-", "max": "-"}


def pgbench_database_alone(stack, event, section, seconds=10, batch=500):
    """PostgreSQL alone on a hot batch as ticketd sends it: two pipelines
    (begin, clock, section lock, idempotency lookup; then the bookings, the
    section's update, the idempotency records and the commit), `batch` book
    requests a transaction, with ticketd's session settings, one client, no
    Kafka and no ticketd. One section is served by one server process at a
    time, so row 3, at the same batch size, can come near it. It does a
    little less than ticketd: the rows are made in the server by
    generate_series, not parsed from the client's arrays (about 200 KB of
    text a batch), and the booking ids are not sent back first.
    Returns (requests/s, requests) or raises RuntimeError."""
    settle(stack)
    keys = "'pgbench-' || :client_id || '-' || :r || '-' || g"
    rows = "FROM generate_series(1, %d) AS g" % batch
    text = (
        "\\set r random(1, 1000000000000)\n"
        "\\startpipeline\n"
        "BEGIN ISOLATION LEVEL READ COMMITTED;\n"
        "SELECT (extract(epoch FROM now()) * 1000000)::bigint;\n"
        "SELECT id, event_id, capacity, remaining FROM sections"
        " WHERE id = ANY(ARRAY[%(s)d]::bigint[]) ORDER BY id FOR UPDATE;\n"
        "SELECT p.idempotency_key, p.fingerprint, p.status, p.reply"
        " FROM (SELECT DISTINCT %(k)s %(rows)s) AS k(key)"
        " CROSS JOIN LATERAL (SELECT * FROM processed_requests"
        " WHERE idempotency_key = k.key LIMIT 1) AS p;\n"
        "\\endpipeline\n"
        "\\startpipeline\n"
        "INSERT INTO bookings (id, event_id, section_id, quantity, customer,"
        " hold_id, request_key)"
        " SELECT nextval('bookings_id_seq'), %(e)d, %(s)d, 1,"
        " 'flood-' || (g %% 1000) || '@example.com', NULL, %(k)s %(rows)s;\n"
        "UPDATE sections s SET remaining = s.remaining - %(b)d"
        " FROM (VALUES (%(s)d::bigint)) AS v(id) WHERE s.id = v.id;\n"
        "INSERT INTO processed_requests (idempotency_key, request_id, type,"
        " fingerprint, status, reply)"
        " SELECT %(k)s, %(k)s, 'book',"
        " '[\"book\",%(e)d,%(s)d,1,\"flood-' || (g %% 1000) || '@example.com\"]',"
        " 'confirmed', '{\"request_id\":\"' || %(k)s || '\",\"type\":\"book\","
        "\"status\":\"confirmed\",\"booking_id\":' || (1000000 + g) || ','"
        " || '\"event_id\":%(e)d,\"section_id\":%(s)d,\"quantity\":1,"
        "\"remaining\":99999999}' %(rows)s;\n"
        "COMMIT;\n"
        "\\endpipeline\n" % {"e": event, "s": section, "b": batch, "k": keys, "rows": rows})
    out, tps = pgbench(stack, text, "-M", "prepared", "-c", "1", "-T", str(seconds),
                       env=dict(os.environ, PGOPTIONS="-c enable_seqscan=off -c jit=off"),
                       timeout=seconds + 120)
    done = re.search(r"number of transactions actually processed: (\d+)", out)
    if not done:
        raise RuntimeError("pgbench said no transaction count:\n" + out)
    return tps * batch, int(done.group(1)) * batch


def reset(stack, event, first, count, capacity):
    stack.query("INSERT INTO events (id, name) VALUES (%s, 'bench') ON CONFLICT DO NOTHING", (event,))
    stack.query("DELETE FROM bookings WHERE section_id BETWEEN %s AND %s", (first, first + count - 1))
    stack.query("DELETE FROM holds WHERE section_id BETWEEN %s AND %s", (first, first + count - 1))
    stack.query("INSERT INTO sections (id, event_id, name, capacity, remaining) "
                "SELECT s, %s, 's' || s, %s, %s FROM generate_series(%s, %s) s "
                "ON CONFLICT (id) DO UPDATE SET capacity = EXCLUDED.capacity, "
                "remaining = EXCLUDED.remaining, held = 0, version = sections.version + 1",
                (event, capacity, capacity, first, first + count - 1))


def settle(stack):
    """Before every measured row: vacuum and analyze what earlier rows
    wrote, and checkpoint, so that a row pays for its own work and not for
    autovacuum or a checkpoint that an earlier row's writes started (both
    ran inside the latency line otherwise)."""
    conn = stack.db()  # autocommit, and no "with": VACUUM wants no transaction
    try:
        with conn.cursor() as cur:
            cur.execute("VACUUM (ANALYZE) bookings, holds, processed_requests, sections")
            cur.execute("CHECKPOINT")
    finally:
        conn.close()


def mean_batch(t):
    """Requests per database transaction over ticketd's run, from its
    ticketd_batch_size histogram; None when /metrics does not say."""
    status, text = t.http("/metrics")
    seen = {}
    for line in text.splitlines() if status == 200 else ():
        name, _, value = line.partition(" ")
        if name in ("ticketd_batch_size_sum", "ticketd_batch_size_count"):
            seen[name] = float(value)
    if not seen.get("ticketd_batch_size_count"):
        return None
    return seen["ticketd_batch_size_sum"] / seen["ticketd_batch_size_count"]


def run_ticketd_row(stack, name, topic, flood_args, timeout=900, statements=False,
                    **settings):
    """One ticketd row; with statements, pg_stat_statements counts from
    after the settling (print_statements reads it)."""
    settle(stack)
    if statements:
        statements_reset(stack)
    t = Ticketd(stack, name=name, request_topic=topic, group_id="bench-" + name,
                log_level="warn", **settings)
    t.start()
    try:
        meter = CpuMeter(stack, t.proc.pid)
        f = flood(stack, topic, *flood_args, timeout=timeout)
        rss, cpu = proc_usage(t.proc.pid)
        sent = int(f["sent"])
        us = meter.per_request(sent, server_cpu=cpu)
        pg_kinds = meter.postgres_by_kind(sent)
        batch = mean_batch(t)
    finally:
        code = t.stop()
    return {"rate": float(f["answered"]) / float(f["seconds"]), "p50": f["p50"],
            "p99": f["p99"], "max": f["max"], "rss": rss, "cpu_us": us,
            "pg_kinds": pg_kinds, "batch": batch,
            "lost": sent - int(f["answered"]), "invariant": f["ok_invariant"],
            "exit": code, "f": f}


def run_kafka_row(stack, topic, reply_topic, flood_args):
    """The Kafka path alone: ticket-flood --echo relays each request to the
    reply topic with librdkafka, no database: consume, produce, deliver,
    as ticketd does."""
    settle(stack)
    env = dict(os.environ, TICKETD_BROKERS=stack.brokers)
    relay = subprocess.Popen([os.path.join(REPO, "ticket-flood"), "--echo",
                              "--request-topic", topic, "--reply-topic", reply_topic],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(5)  # let the relay join its group
    try:
        meter = CpuMeter(stack, relay.pid)
        f = flood(stack, topic, "--no-verify", *flood_args)
        sent = int(f["sent"])
        us = meter.per_request(sent, server_cpu=cpu_of(relay.pid))
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(30)
    return {"rate": float(f["answered"]) / float(f["seconds"]), "p50": f["p50"],
            "p99": f["p99"], "max": f["max"], "lost": sent - int(f["answered"]),
            "cpu_us": us}


VEGETA = os.path.join(REPO, ".cache", "go", "bin", "vegeta")


def vegeta(url, rate, seconds, connections=64, stop=None):
    """GET url from `connections` keep-alive connections at `rate` a second
    (0: as fast as they answer) for `seconds`, or until stop (a
    threading.Event) is set; vegeta's JSON report."""
    attack = subprocess.Popen(
        [VEGETA, "attack", "-rate=%d/s" % rate if rate else "-rate=0",
         "-duration=%ds" % seconds, "-connections=%d" % connections,
         "-max-connections=%d" % connections, "-workers=%d" % connections,
         "-max-workers=%d" % connections, "-keepalive=true", "-timeout=10s"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    attack.stdin.write(("GET %s\n" % url).encode())
    attack.stdin.close()
    if stop is not None:
        while attack.poll() is None and not stop.wait(0.1):
            pass
        if attack.poll() is None:
            attack.send_signal(signal.SIGINT)  # vegeta stops and reports
    results = attack.stdout.read()
    attack.wait(60)
    report = subprocess.run([VEGETA, "report", "-type=json"], input=results,
                            capture_output=True, timeout=120)
    return json.loads(report.stdout)


def seed_bookings(stack, event, section, bookings):
    """A section holding `bookings` one-seat bookings (made in SQL: the
    readers' figures need the rows, not the way they came)."""
    stack.query("INSERT INTO events (id, name) VALUES (%s, 'readers') "
                "ON CONFLICT DO NOTHING", (event,))
    stack.query("DELETE FROM bookings WHERE section_id = %s", (section,))
    stack.query("DELETE FROM holds WHERE section_id = %s", (section,))
    stack.query("INSERT INTO sections (id, event_id, name, capacity, remaining) "
                "VALUES (%s, %s, 'readers', 100000000, 100000000) "
                "ON CONFLICT (id) DO UPDATE SET event_id = EXCLUDED.event_id, "
                "capacity = 100000000, remaining = 100000000, held = 0, "
                "version = sections.version + 1",
                (section, event))
    if bookings:
        stack.query("INSERT INTO bookings (event_id, section_id, quantity, customer, "
                    "request_key) SELECT %s, %s, 1, 'r' || (g %% 5000), 'seeded-' || "
                    "%s || '-' || g FROM generate_series(1, %s) g",
                    (event, section, section, bookings))
        stack.query("UPDATE sections SET remaining = remaining - %s, "
                    "version = version + 1 WHERE id = %s", (bookings, section))
    stack.query("ANALYZE bookings")


def spread(values, spec="%.0f"):
    return "%s (%s-%s)" % (spec % statistics.median(values), spec % min(values),
                           spec % max(values))


def run_readers(stack, args):
    """Issue 13's figures: (a) readers at 2,000/s during a hot flood
    against the same flood alone, interleaved; (b) readers alone, as fast
    as 64 connections go; (c) the uncached cost of an event's view at 0
    and at 1,000,000 bookings, interleaved."""
    if not os.path.exists(VEGETA):
        print("\nreaders: not measured (no %s; scripts/deps.sh --bench installs "
              "it)" % VEGETA)
        return
    seed_bookings(stack, 505, 2100, args.reader_bookings)
    seed_bookings(stack, 506, 2101, 0)
    stack.create_topic("bench.readers", partitions=4)
    n = args.reader_flood
    where = ["--fresh-seed", "--event", "507", "--section", "2102", "--sections", "1",
             "--capacity", "100000000", "-n", str(n), "-q", "1",
             "-c", str(args.concurrency), "-t", "600"]
    alone_rates, with_rates, p99s, errors = [], [], [], 0
    for _ in range(args.reader_rounds):
        reset(stack, 507, 2102, 1, 100000000)
        t = Ticketd(stack, name="readers", request_topic="bench.readers",
                    group_id="bench-readers", log_level="warn")
        t.start()
        url = "http://127.0.0.1:%d/events/505" % t.http_port
        try:
            f = flood(stack, "bench.readers", *where)
            alone_rates.append(float(f["answered"]) / float(f["seconds"]))
            reset(stack, 507, 2102, 1, 100000000)
            done = threading.Event()
            box = {}
            reader = threading.Thread(target=lambda: box.update(
                r=vegeta(url, 2000, 600, stop=done)))
            reader.start()
            time.sleep(1)  # the readers are at their rate before the flood
            try:
                f = flood(stack, "bench.readers", *where)
            finally:
                done.set()
                reader.join()
            with_rates.append(float(f["answered"]) / float(f["seconds"]))
            r = box["r"]
            p99s.append(r["latencies"]["99th"] / 1e6)
            errors += r["requests"] - int(round(r["success"] * r["requests"]))
        finally:
            t.stop()
    ratios = [w / a for w, a in zip(with_rates, alone_rates)]
    print("\nreaders (a): GET /events/{id} of a section with %d bookings at 2000/s "
          "from 64 connections during a hot flood of %d, %d rounds interleaved: "
          "flood %s requests/s alone, %s with readers, ratio %s; readers' p99 %s ms, "
          "%d failed" % (args.reader_bookings, n, args.reader_rounds, spread(alone_rates),
                         spread(with_rates), spread(ratios, "%.2fx"),
                         spread(p99s, "%.1f"), errors))

    # The readers alone: a ticketd with nothing to consume (a topic of its
    # own: a new group on bench.readers would replay everything sent there).
    stack.create_topic("bench.readers-idle", partitions=1)
    t = Ticketd(stack, name="readers-alone", request_topic="bench.readers-idle",
                group_id="bench-readers-alone", log_level="warn")
    t.start()
    try:
        r = vegeta("http://127.0.0.1:%d/events/505" % t.http_port, 0, 10)
    finally:
        t.stop()
    print("readers (b): alone, 64 connections, 10 s: %.0f answers/s, p99 %.1f ms, "
          "%d failed" % (r["throughput"], r["latencies"]["99th"] / 1e6,
                         r["requests"] - int(round(r["success"] * r["requests"]))))

    t = Ticketd(stack, name="readers-uncached", request_topic="bench.readers-idle",
                group_id="bench-readers-uncached", log_level="warn", http_cache_ms=0)
    t.start()
    rates = {505: [], 506: []}
    try:
        for _ in range(args.reader_rounds):
            for event in (506, 505):
                r = vegeta("http://127.0.0.1:%d/events/%d" % (t.http_port, event), 0, 5,
                           connections=8)
                rates[event].append(r["throughput"])
    finally:
        t.stop()
    cost = [1e6 / a / (1e6 / b) for a, b in zip(rates[505], rates[506])]
    print("readers (c): uncached (http_cache_ms=0), 8 connections, 5 s each, %d rounds "
          "interleaved: %s answers/s at 0 bookings, %s at %d; cost at %d / cost at 0: %s"
          % (args.reader_rounds, spread(rates[506]), spread(rates[505]),
             args.reader_bookings, args.reader_bookings, spread(cost, "%.2fx")))


def statements_reset(stack):
    stack.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    stack.query("SELECT pg_stat_statements_reset()")


def print_statements(stack, label, r):
    """The statements of row r since statements_reset, by total time, and
    the row's PostgreSQL CPU by kind of process."""
    requests = int(r["f"]["sent"])
    rows = stack.query(
        "SELECT calls, total_exec_time, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) "
        "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
        "WHERE datname = current_database()) ORDER BY total_exec_time DESC LIMIT 15")
    print("\n%s, per statement (pg_stat_statements, %d requests):" % (label, requests))
    print("| statement | calls | ms in all | us a request | rows |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for calls, total, nrows, query in rows:
        print("| `%s` | %d | %.1f | %.2f | %d |" % (query, calls, total,
                                                  total * 1000 / max(requests, 1), nrows))
    print("%s, PostgreSQL CPU us a request by process: %s" % (label, ", ".join(
        "%s %.1f" % (k, v) for k, v in sorted(r["pg_kinds"].items(), key=lambda kv: -kv[1])
        if v >= 0.05)))


def fmt(v, spec="%.0f"):
    return spec % v if isinstance(v, (int, float)) else str(v)


def cpu_cells(r):
    """CPU microseconds a request: ticketd (or relay), PostgreSQL, broker,
    ticket-flood, all."""
    us = r.get("cpu_us")
    if not us:
        return ["-"] * 5
    return [fmt(us[k], "%.1f") for k in ("server", "postgres", "broker", "flood", "total")]


def print_table(title, rows, floor, ceiling):
    print("\n%s" % title)
    print("| row | requests/s | x row 1 | x row 4 | p50 ms | p99 ms | max ms | peak RSS MB "
          "| CPU us/req: ticketd | PostgreSQL | broker | ticket-flood | all | lost | invariant |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
          "| ---: | ---: | --- |")
    for name, r in rows:
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt(r["rate"]), fmt(r["rate"] / floor, "%.1fx") if floor else "-",
            fmt(r["rate"] / ceiling, "%.2fx") if ceiling else "-",
            r["p50"], r["p99"], r["max"], fmt(r.get("rss", "-"), "%.1f"),
            " | ".join(cpu_cells(r)),
            r.get("lost", 0), {True: "ok", False: "BROKEN"}.get(r.get("invariant"), "-")))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    # Each row runs long enough to be steady: at least ~10 s of traffic on
    # this project's machine (rows 3 and 4 at their usual rates; row 2,
    # one request a transaction, with fewer requests).
    ap.add_argument("--hot", type=int, default=200000, help="requests of the hot workload")
    ap.add_argument("--spread", type=int, default=200000)
    ap.add_argument("--sellout", type=int, default=200000)
    ap.add_argument("--row2", type=int, default=8000,
                    help="requests of row 2 (batch_max=1) in each workload")
    ap.add_argument("--kafka-requests", type=int, default=800000,
                    help="requests of row 4 (the Kafka path alone) in each workload")
    ap.add_argument("--concurrency", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=5000, help="offered rate of the latency mode")
    ap.add_argument("--latency-seconds", type=int, default=15,
                    help="how long the latency mode offers its rate")
    ap.add_argument("--svg", default=os.path.join(REPO, "build", "bench.svg"),
                    help="where the picture of the run goes")
    ap.add_argument("--statements", action="store_true",
                    help="print the per-statement breakdown (pg_stat_statements) and "
                    "PostgreSQL's CPU by process of the hot row 3 and the latency line")
    ap.add_argument("--rss-flood", type=int, default=0,
                    help="also flood this many requests for the peak RSS (e.g. 1000000)")
    ap.add_argument("--workloads", default="hot,spread,sell-out,latency,readers",
                    help="which parts to run, comma-separated (\"\" for none, with --rss-flood)")
    ap.add_argument("--reader-bookings", type=int, default=1000000,
                    help="bookings the readers' section holds")
    ap.add_argument("--reader-flood", type=int, default=150000,
                    help="requests of the hot flood the readers run beside")
    ap.add_argument("--reader-rounds", type=int, default=3,
                    help="interleaved rounds of the readers' comparisons")
    ap.add_argument("--consumer-property", action="append", default=[],
                    metavar="NAME=VALUE",
                    help="a librdkafka property for every consumer of the run "
                    "(ticketd's, ticket-flood's and the relay's), after their own "
                    "choices; repeatable")
    ap.add_argument("--producer-property", action="append", default=[],
                    metavar="NAME=VALUE",
                    help="the same for every producer (e.g. linger.ms=5, "
                    "compression.type=lz4)")
    args = ap.parse_args()
    # The processes read them as ticketd's settings (TICKETD_*, comma-separated).
    for name, props in (("TICKETD_CONSUMER_PROPERTIES", args.consumer_property),
                        ("TICKETD_PRODUCER_PROPERTIES", args.producer_property)):
        if props:
            os.environ[name] = ",".join(props)
    chosen = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(chosen) - {"hot", "spread", "sell-out", "latency", "readers"}
    if unknown:
        ap.error("unknown workload(s): %s" % ", ".join(sorted(unknown)))
    if not chosen and not args.rss_flood:
        ap.error("nothing to run: no workload and no --rss-flood")

    stack = Stack(os.environ["STACK_DIR"])
    stack.env = dict(line.split("=", 1) for line in
                     (l.replace("export ", "").strip().replace("'", "")
                      for l in open(os.path.join(stack.state_dir, "stack.env"))
                      if l.startswith("export")))
    print("ticketd benchmark, %s, %d cores, %s" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.cpu_count(),
        open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(" \t:")))
    for role, props in (("consumer", args.consumer_property),
                        ("producer", args.producer_property)):
        if props:
            print("%s properties: %s" % (role, ", ".join(props)))
    for topic in ("bench.b1", "bench.shipped", "bench.kafka", "bench.replies-kafka",
                  "bench.latency", "bench.rss"):
        stack.create_topic(topic, partitions=4)

    results = {}
    c = str(args.concurrency)
    workloads = [
        ("hot", args.hot, ["--event", "500", "--section", "500", "--sections", "1",
                           "--capacity", "100000000"], (500, 500, 1, 100000000)),
        ("spread", args.spread, ["--event", "501", "--section", "1000", "--sections", "1000",
                                 "--capacity", "1000000"], (501, 1000, 1000, 1000000)),
        ("sell-out", args.sellout, ["--event", "502", "--section", "600", "--sections", "1",
                                    "--capacity", "10000"], (502, 600, 1, 10000)),
    ]
    for name, n, where, (event, first, count, capacity) in workloads:
        if name not in chosen:
            continue
        common = ["--fresh-seed", "-q", "1", "-c", c, "-t", "900"] + where
        rows = []
        reset(stack, event, first, count, capacity)
        floor = pgbench_floor(stack, event, first)
        rows.append(("1. one transaction per request (pgbench, 16 clients, 10 s)", floor))
        reset(stack, event, first, count, capacity)
        r2 = run_ticketd_row(stack, "b1", "bench.b1", ["-n", str(args.row2)] + common,
                             batch_max=1)
        rows.append(("2. ticketd, batch_max=1 (%d requests)" % args.row2, r2))
        r3 = run_ticketd_row(stack, "shipped", "bench.shipped", ["-n", str(n)] + common,
                             statements=name == "hot" and args.statements)
        rows.append(("3. ticketd as shipped (%d requests)" % n, r3))
        if name == "hot" and args.statements:
            print_statements(stack, "hot row 3", r3)
        r4 = run_kafka_row(stack, "bench.kafka", "bench.replies-kafka",
                           ["-n", str(args.kafka_requests), "-q", "1", "-c", c, "-t", "900",
                            "--reply-topic", "bench.replies-kafka"] + where)
        rows.append(("4. Kafka path alone (ticket-flood --echo relay, no database, "
                     "%d requests)" % args.kafka_requests, r4))
        if name == "sell-out":
            sold = stack.query("SELECT coalesce(sum(quantity), 0) FROM bookings "
                               "WHERE section_id = 600 AND status = 'confirmed'")[0][0]
            print("\nsell-out: %d seats sold of 10000 (ticketd as shipped's run)" % sold)
            if sold != 10000:
                print("SELL-OUT WRONG: %d seats sold" % sold)
        print_table("workload %s: concurrency %s" % (name, c), rows, floor["rate"],
                    r4["rate"])
        if name == "hot":
            try:
                alone, answered = pgbench_database_alone(stack, event, first)
                print("\nhot, PostgreSQL alone (ticketd's statements, batches of 500, "
                      "pgbench, 1 client, %d requests in 10 s): %.0f requests/s, "
                      "%.1fx row 1, %.2fx row 4" % (
                          answered, alone, alone / floor["rate"], alone / r4["rate"]))
                results["alone"] = alone
            except RuntimeError as e:
                print("\nhot, PostgreSQL alone: not measured (%s)" % e)
        results[name] = (floor["rate"], r3["rate"], r4["rate"])
        results.setdefault("rows", {})[name] = [floor["rate"], r2["rate"], r3["rate"],
                                                r4["rate"]]

    # Latency at a fixed offered rate, well under saturation, and the Kafka
    # path alone at the same rate, so that the two p99s sit side by side.
    if "latency" in chosen:
        reset(stack, 503, 700, 100, 1000000)
        n = args.rate * args.latency_seconds
        at_rate = ["--event", "503", "--section", "700", "--sections", "100", "-n", str(n),
                   "-q", "1", "-c", "5000", "--rate", str(args.rate), "-t", "900"]
        lat = run_ticketd_row(stack, "latency", "bench.latency",
                              ["--fresh-seed", "--capacity", "1000000"] + at_rate,
                              statements=args.statements)
        if args.statements:
            print_statements(stack, "latency, ticketd", lat)
        path = run_kafka_row(stack, "bench.kafka", "bench.replies-kafka",
                             ["--reply-topic", "bench.replies-kafka"] + at_rate)
        for label, r in (("ticketd", lat), ("Kafka path alone", path)):
            us = r["cpu_us"]
            batch = r.get("batch")
            print("\nlatency at %d requests/s offered, 100 sections, %d requests, %s: "
                  "p50 %s ms, p99 %s ms, max %s ms, lost %d; CPU us a request: "
                  "ticketd/relay %.1f, PostgreSQL %.1f, broker %.1f, ticket-flood %.1f, "
                  "all %.1f%s" % (args.rate, n, label, r["p50"], r["p99"], r["max"],
                                  r["lost"], us["server"], us["postgres"], us["broker"],
                                  us["flood"], us["total"],
                                  "; %.1f requests a batch" % batch if batch else ""))
        results["latency"] = (lat, path)
    if "readers" in chosen:
        run_readers(stack, args)
    if args.rss_flood:
        reset(stack, 504, 800, 100, 100000000)
        big = run_ticketd_row(stack, "rss", "bench.rss",
                              ["--fresh-seed", "--event", "504", "--section", "800",
                               "--sections", "100", "--capacity", "100000000", "-n",
                               str(args.rss_flood), "-q", "1", "-c", "20000", "-t", "3000"],
                              timeout=3100)
        print("\npeak RSS over a %d-request flood: %.1f MB (%.0f requests/s, lost %d, "
              "invariant %s)" % (args.rss_flood, big["rss"], big["rate"], big["lost"],
                                 "ok" if big["invariant"] else "BROKEN"))
    if "hot" in results:
        floor, shipped, kafka = results["hot"]
        line = "hot speed-up vs per-request: %.1fx; vs Kafka path: %.1fx" % (
            shipped / floor, shipped / kafka)
        if "alone" in results:
            line += "; vs PostgreSQL alone: %.1fx" % (shipped / results["alone"])
        if "latency" in results:
            lat, path = results["latency"]
            line += "; p99 at %d/s: %s ms (Kafka path %s ms); CPU at %d/s: %.0f us a " \
                    "request" % (args.rate, lat["p99"], path["p99"], args.rate,
                                 lat["cpu_us"]["total"])
        print("\n" + line)
    if results.get("rows") or "latency" in results:
        path = plot(results, args.svg)
        print("\npicture: %s" % path if path else "\npicture: not drawn (no matplotlib)")


def plot(results, path):
    """The run as one SVG: requests/s of each row per workload, and the
    latency percentiles of ticketd and of the Kafka path at the offered
    rate. Returns path, or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    labels = ["1 per request", "batch_max=1", "ticketd", "Kafka path"]
    rows = results.get("rows", {})
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        values = [rows[w][i] for w in rows]
        xs = [k + (i - 1.5) * width for k in range(len(rows))]
        left.bar(xs, values, width, label=label)
    left.set_xticks(range(len(rows)))
    left.set_xticklabels(list(rows))
    left.set_yscale("log")
    left.set_ylabel("requests/s (log)")
    left.set_title("throughput per workload")
    left.legend(fontsize=8)
    if "latency" in results:
        lat, kafka = results["latency"]
        names = ["p50", "p99", "max"]
        for k, (label, r) in enumerate((("ticketd", lat), ("Kafka path", kafka))):
            values = [float(r[n]) if r[n] != "-" else 0 for n in names]
            right.bar([x + (k - 0.5) * 0.35 for x in range(3)], values, 0.35, label=label)
        right.set_xticks(range(3))
        right.set_xticklabels(names)
        right.set_ylabel("ms")
        right.set_title("latency at the offered rate")
        right.legend(fontsize=8)
    fig.suptitle(time.strftime("make bench, %Y-%m-%d %H:%M UTC", time.gmtime()))
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, format="svg")
    return path


if __name__ == "__main__":
    main()
