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
    env = dict(os.environ, TICKETD_BROKERS=stack.brokers, TICKETD_PG=stack.pg)
    out = subprocess.run([os.path.join(REPO, "ticket-flood"), "--quiet",
                          "--request-topic", topic, *args],
                         env=env, capture_output=True, text=True, timeout=timeout).stdout
    summary = re.search(r"^summary (.*)$", out, re.M)
    if not summary:
        raise RuntimeError("ticket-flood said:\n" + out)
    fields = dict(kv.split("=", 1) for kv in summary.group(1).split())
    lat = re.search(r"p50 ([\d.]+)\s+p90 ([\d.]+)\s+p99 ([\d.]+)\s+max ([\d.]+)", out)
    fields["p50"], fields["p99"], fields["max"] = (lat.group(1), lat.group(3), lat.group(4)) if lat else ("-", "-", "-")
    fields["ok_invariant"] = "invariant ok" in out or "--no-verify" in args
    fields["out"] = out
    return fields


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


def pgbench_floor(stack, event, section, n, clients=16):
    out, tps = pgbench(
        stack,
        "BEGIN;\n"
        "SELECT remaining FROM sections WHERE id = %d FOR UPDATE;\n"
        "WITH taken AS (UPDATE sections SET remaining = remaining - 1"
        " WHERE id = %d AND remaining >= 1 RETURNING id)"
        " INSERT INTO bookings (event_id, section_id, quantity, customer, request_key)"
        " SELECT %d, id, 1, 'pgbench', 'pgbench-' || :client_id || '-' || random() FROM taken;\n"
        "COMMIT;\n" % (section, section, event),
        "-c", str(clients), "-j", "2", "-t", str(n // clients), "-r")
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


def run_ticketd_row(stack, name, topic, flood_args, timeout=900, **settings):
    t = Ticketd(stack, name=name, request_topic=topic, group_id="bench-" + name,
                log_level="warn", **settings)
    t.start()
    try:
        f = flood(stack, topic, *flood_args, timeout=timeout)
        rss, cpu = proc_usage(t.proc.pid)
    finally:
        code = t.stop()
    sent = int(f["sent"])
    return {"rate": float(f["answered"]) / float(f["seconds"]), "p50": f["p50"],
            "p99": f["p99"], "max": f["max"], "rss": rss,
            "cpu_per_k": cpu / sent * 1000, "lost": sent - int(f["answered"]),
            "invariant": f["ok_invariant"], "exit": code, "f": f}


def run_kafka_row(stack, topic, reply_topic, flood_args):
    """The Kafka path alone: ticket-flood --echo relays each request to the
    reply topic with librdkafka, no database: consume, produce, deliver,
    as ticketd does."""
    env = dict(os.environ, TICKETD_BROKERS=stack.brokers)
    relay = subprocess.Popen([os.path.join(REPO, "ticket-flood"), "--echo",
                              "--request-topic", topic, "--reply-topic", reply_topic],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(5)  # let the relay join its group
    try:
        f = flood(stack, topic, "--no-verify", *flood_args)
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(30)
    sent = int(f["sent"])
    return {"rate": float(f["answered"]) / float(f["seconds"]), "p50": f["p50"],
            "p99": f["p99"], "max": f["max"], "lost": sent - int(f["answered"])}


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

    t = Ticketd(stack, name="readers-alone", request_topic="bench.readers",
                group_id="bench-readers-alone", log_level="warn")
    t.start()
    try:
        r = vegeta("http://127.0.0.1:%d/events/505" % t.http_port, 0, 10)
    finally:
        t.stop()
    print("readers (b): alone, 64 connections, 10 s: %.0f answers/s, p99 %.1f ms, "
          "%d failed" % (r["throughput"], r["latencies"]["99th"] / 1e6,
                         r["requests"] - int(round(r["success"] * r["requests"]))))

    t = Ticketd(stack, name="readers-uncached", request_topic="bench.readers",
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


def fmt(v, spec="%.0f"):
    return spec % v if isinstance(v, (int, float)) else str(v)


def print_table(title, rows, floor, ceiling):
    print("\n%s" % title)
    print("| row | requests/s | x row 1 | x row 4 | p50 ms | p99 ms | max ms | peak RSS MB | CPU s / 1k req | lost | invariant |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, r in rows:
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt(r["rate"]), fmt(r["rate"] / floor, "%.1fx") if floor else "-",
            fmt(r["rate"] / ceiling, "%.2fx") if ceiling else "-",
            r["p50"], r["p99"], r["max"],
            fmt(r.get("rss", "-"), "%.1f"), fmt(r.get("cpu_per_k", "-"), "%.3f"),
            r.get("lost", 0), {True: "ok", False: "BROKEN"}.get(r.get("invariant"), "-")))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hot", type=int, default=20000, help="requests of the hot workload")
    ap.add_argument("--spread", type=int, default=20000)
    ap.add_argument("--sellout", type=int, default=50000)
    ap.add_argument("--concurrency", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=5000, help="offered rate of the latency mode")
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
    args = ap.parse_args()
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
        open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": ")))
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
        common = ["--fresh-seed", "-n", str(n), "-q", "1", "-c", c, "-t", "600"] + where
        rows = []
        reset(stack, event, first, count, capacity)
        floor = pgbench_floor(stack, event, first, n)
        rows.append(("1. one transaction per request (pgbench, 16 clients)", floor))
        r2 = run_ticketd_row(stack, "b1", "bench.b1", common, batch_max=1)
        rows.append(("2. ticketd, batch_max=1", r2))
        r3 = run_ticketd_row(stack, "shipped", "bench.shipped", common)
        rows.append(("3. ticketd as shipped", r3))
        r4 = run_kafka_row(stack, "bench.kafka", "bench.replies-kafka",
                           ["-n", str(n), "-q", "1", "-c", c, "-t", "600", "--reply-topic",
                            "bench.replies-kafka"] + where)
        rows.append(("4. Kafka path alone (ticket-flood --echo relay, no database)", r4))
        if name == "sell-out":
            sold = stack.query("SELECT coalesce(sum(quantity), 0) FROM bookings "
                               "WHERE section_id = 600 AND status = 'confirmed'")[0][0]
            print("\nsell-out: %d seats sold of 10000 (ticketd as shipped's run)" % sold)
            if sold != 10000:
                print("SELL-OUT WRONG: %d seats sold" % sold)
        print_table("workload %s: %d requests, concurrency %s" % (name, n, c),
                    rows, floor["rate"], r4["rate"])
        if name == "hot":
            try:
                alone, answered = pgbench_database_alone(stack, event, first)
                print("\nhot, PostgreSQL alone (ticketd's statements, batches of 500, "
                      "pgbench, 1 client, %d requests in 10 s): %.0f requests/s, "
                      "%.1fx row 1, %.2fx row 4" % (
                          answered, alone, alone / floor["rate"], alone / r4["rate"]))
            except RuntimeError as e:
                print("\nhot, PostgreSQL alone: not measured (%s)" % e)
        results[name] = (floor["rate"], r3["rate"], r4["rate"])

    # Latency at a fixed offered rate, well under saturation.
    if "latency" in chosen:
        reset(stack, 503, 700, 100, 1000000)
        lat = run_ticketd_row(stack, "latency", "bench.latency",
                              ["--fresh-seed", "--event", "503", "--section", "700",
                               "--sections", "100", "--capacity", "1000000", "-n",
                               str(args.rate * 10), "-q", "1", "-c", "5000",
                               "--rate", str(args.rate), "-t", "600"])
        print("\nlatency at %d requests/s offered, 100 sections, %d requests: "
              "p50 %s ms, p99 %s ms, max %s ms, lost %d" % (
                  args.rate, args.rate * 10, lat["p50"], lat["p99"], lat["max"],
                  lat["lost"]))
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
        print("\nhot speed-up vs per-request: %.1fx; vs Kafka path: %.1fx" %
              (shipped / floor, shipped / kafka))


if __name__ == "__main__":
    main()
