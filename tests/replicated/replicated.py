"""Helpers for the replicated scenarios: topics on the three-node cluster,
partition leaders and replicas, a watch on the group's committed offsets,
and the flood with its checker (Jepsen-style: every acknowledged reply is
held against the surviving database).

A scenario floods its own request and reply topics, both with
LogAppendTime, so that the broker's clock says when a request landed and
when its reply did; the kill's time is taken on the same machine's clock.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))

from harness import REPO, Ticketd, unique  # noqa: E402

RESULTS = os.path.join(REPO, "build", "replicated-scenarios.log")

# Statuses whose reply promises an effect in the database, and those
# whose reply is stored (a retry gets the same answer).
ACKNOWLEDGED = ("confirmed", "held", "ok")
STORED = ACKNOWLEDGED + ("rejected",)


def admin(brokers):
    return AdminClient({"bootstrap.servers": brokers, "log_level": 4})


def create_topic(brokers, name, partitions):
    """Replication factor 3, two in-sync replicas for a write, no unclean
    election, the broker's append time on every record."""
    client = admin(brokers)  # alive until the futures are done
    futures = client.create_topics([NewTopic(
        name, partitions, 3, config={
            "min.insync.replicas": "2",
            "unclean.leader.election.enable": "false",
            "message.timestamp.type": "LogAppendTime",
            "max.message.bytes": "16777216"})])
    for f in futures.values():
        f.result(60)
    wait_known(brokers, name)


def wait_known(brokers, topic, timeout=60):
    """Every node knows topic, its replicas all in sync. A node learns a
    new topic a moment after the one that created it, and a consumer told
    by it that the topic does not exist would look again only minutes
    later. Each node is asked alone (kcat names which one answered)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ok = True
        for address in brokers.split(","):
            out = subprocess.run(["kcat", "-b", address, "-L", "-m", "2", "-t", topic],
                                 capture_output=True, text=True).stdout
            partitions = re.findall(r"partition \d+, leader (-?\d+), replicas: ([\d,]+), "
                                    r"isrs: ([\d,]*)", out)
            if not partitions or any(int(leader) < 0 or len(isrs.split(",")) < 3
                                     for leader, _, isrs in partitions):
                ok = False
                break
        if ok:
            return
        time.sleep(0.3)
    raise AssertionError("not every node knows topic %s within %ds" % (topic, timeout))


def partitions(brokers, topic):
    """{partition: (leader, replicas, isrs)}"""
    client = admin(brokers)
    md = client.list_topics(topic, timeout=30)
    return {p.id: (p.leader, list(p.replicas), list(p.isrs))
            for p in md.topics[topic].partitions.values()}


def busiest_leader(brokers, topic):
    """The node that leads the most partitions of topic."""
    counts = {}
    for leader, _, _ in partitions(brokers, topic).values():
        counts[leader] = counts.get(leader, 0) + 1
    return max(sorted(counts), key=lambda n: counts[n]), counts


def wait_in_sync(brokers, topics, timeout=120):
    """Every partition of topics has all its replicas in sync (a node that
    came back has caught up), as a rolling upgrade waits for before the
    next node. Raises on timeout."""
    deadline = time.time() + timeout
    lagging = None
    while time.time() < deadline:
        try:
            lagging = [(t, p) for t in topics
                       for p, (_, replicas, isrs) in partitions(brokers, t).items()
                       if sorted(replicas) != sorted(isrs)]
            if not lagging:
                return
        except Exception as e:  # a node may be starting
            lagging = str(e)
        time.sleep(0.5)
    raise AssertionError("partitions not in sync after %ds: %s" % (timeout, lagging))


class Watch:
    """A consumer read on a thread of its own, one step() at a time, for
    at most 900 s or until stop()."""

    def __init__(self, consumer):
        self.consumer = consumer
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        deadline = time.time() + 900
        while self.running and time.time() < deadline:
            self.step()

    def stop(self):
        self.running = False
        self.thread.join(10)
        self.consumer.close()


class OffsetWatch(Watch):
    """Samples the group's committed offsets twice a second and notes any
    partition whose committed offset moved backwards."""

    def __init__(self, brokers, group, topic, count):
        self.parts = [TopicPartition(topic, p) for p in range(count)]
        self.best = {}
        self.backwards = []
        self.samples = 0
        super().__init__(Consumer({"bootstrap.servers": brokers, "group.id": group,
                                   "enable.auto.commit": False, "log_level": 3}))

    def step(self):
        try:
            for tp in self.consumer.committed(self.parts, timeout=5):
                if tp.offset < 0:
                    continue
                before = self.best.get(tp.partition, -1)
                if tp.offset < before:
                    self.backwards.append((tp.partition, before, tp.offset))
                self.best[tp.partition] = max(before, tp.offset)
            self.samples += 1
        except Exception:
            pass  # the coordinator may be moving: the next sample
        time.sleep(0.5)


class ReplyWatch(Watch):
    """Reads the reply topic as it is written, as a client would, and
    notes when each request's first reply could be read (a reply is
    readable once every in-sync replica has it, which may be long after
    the leader appended it)."""

    def __init__(self, brokers, topic, count):
        self.first_seen = {}
        consumer = Consumer({"bootstrap.servers": brokers, "group.id": unique("watch"),
                             "enable.auto.commit": False, "log_level": 3,
                             "fetch.wait.max.ms": 10})
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(count)])
        super().__init__(consumer)

    def step(self):
        msg = self.consumer.poll(0.05)
        if msg is None or msg.error():
            return
        doc = parse(msg.value())
        if doc and "request_id" in doc:
            self.first_seen.setdefault(doc["request_id"], time.time())


def read_topic(brokers, topic, timeout=120):
    """Every record of topic from its start to its end now: a list of
    (append time in s, partition, offset, value)."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": unique("reader"),
                         "enable.auto.commit": False, "log_level": 3})
    try:
        md = consumer.list_topics(topic, timeout=30)
        ends = {}
        parts = []
        for p in md.topics[topic].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            ends[p] = high
            parts.append(TopicPartition(topic, p, OFFSET_BEGINNING))
        consumer.assign(parts)
        records = []
        done = {p for p, high in ends.items() if high == 0}
        deadline = time.time() + timeout
        while len(done) < len(ends):
            assert time.time() < deadline, "reading %s: not at its end after %ds" % (topic, timeout)
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            records.append((msg.timestamp()[1] / 1000.0, msg.partition(), msg.offset(),
                            msg.value()))
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
        return records
    finally:
        consumer.close()


def parse(value):
    try:
        doc = json.loads(value)
        return doc if isinstance(doc, dict) else None
    except (TypeError, ValueError):
        return None


class Scenario:
    """Two or three ticketd processes in one group on the replicated
    stack, a flood from ticket-flood (books and holds with their confirms,
    releases and cancels, over eight sections), the fault, then the
    checker."""

    def __init__(self, stack, name, base, processes=3, n=4000, rate=250,
                 request_partitions=8):
        self.stack = stack
        self.name = name
        self.base = base
        self.n = n
        self.rate = rate
        tag = unique(name)
        self.request_topic = "rep-%s-requests" % tag
        self.reply_topic = "rep-%s-replies" % tag
        self.group = "rep-" + tag
        create_topic(stack.brokers, self.request_topic, request_partitions)
        create_topic(stack.brokers, self.reply_topic, 4)
        self.request_partitions = request_partitions
        self.members = []
        # Started together: each one's joining the group would otherwise
        # wait out the rebalance the one before it caused.
        for i in range(processes):
            t = Ticketd(stack, name="%s-%d" % (name, i), request_topic=self.request_topic,
                        group_id=self.group, reply_topic=self.reply_topic)
            self.members.append(t.start(wait_ready=False))
        for t in self.members:
            t.wait_ready(timeout=120)
        self.offsets = OffsetWatch(stack.brokers, self.group, self.request_topic,
                                   request_partitions)
        self.replies_seen = ReplyWatch(stack.brokers, self.reply_topic, 4)
        self.faults = []  # (what, time)
        self.flood = None

    def start_flood(self):
        env = dict(os.environ, TICKETD_BROKERS=self.stack.brokers, TICKETD_PG=self.stack.pg)
        self.flood = subprocess.Popen(
            [os.path.join(REPO, "ticket-flood"), "--quiet",
             "--request-topic", self.request_topic, "--reply-topic", self.reply_topic,
             "--fresh-seed", "--event", str(self.base), "--section", str(self.base),
             "--sections", "8", "--capacity", "100000", "-n", str(self.n), "-q", "1",
             "-c", "1000", "--rate", str(self.rate), "--mix", "20", "--ttl", "300",
             "-t", "400"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.started = time.time()

    def wait_until(self, seconds):
        """Until `seconds` after the flood started."""
        time.sleep(max(0, self.started + seconds - time.time()))

    def fault(self, what, *stack_args):
        """Run a stack command, noting when it was given."""
        at = time.time()
        self.faults.append((what, at))
        self.stack.script(*stack_args)
        return at

    def finish(self):
        """Wait for the flood, then account for every request. Returns the
        figures; the caller asserts on them (a measurement may not)."""
        out, _ = self.flood.communicate(timeout=600)
        self.flood_output = out
        summary = re.search(r"^summary (.*)$", out, re.M)
        assert summary, out
        fields = dict(kv.split("=", 1) for kv in summary.group(1).split())
        self.run_id = fields["run"]
        self.offsets.stop()
        time.sleep(1)  # the watch reads the last replies
        self.replies_seen.stop()
        counters = self.counters()
        figures = self.check(int(fields["sent"]))
        figures["counters"] = counters
        figures["flood_exit"] = self.flood.returncode
        self.figures = figures
        self.report()
        return figures

    COUNTERS = ("ticketd_db_commit_unknown_total", "ticketd_requests_replayed_total",
                "ticketd_db_server_changes_total", "ticketd_db_reconnects_total",
                "ticketd_reply_failures_total")

    def counters(self):
        """Some of ticketd's counters, summed over the group's processes."""
        sums = dict.fromkeys(self.COUNTERS, 0)
        for t in self.members:
            status, text = t.http("/metrics")
            for name in self.COUNTERS:
                found = re.search(r"^%s (\d+)$" % name, text, re.M) if status == 200 else None
                sums[name] += int(found.group(1)) if found else 0
        return sums

    def stop_members(self):
        """SIGTERM to every process at once, then their exit codes."""
        running = [t for t in self.members if t.proc and t.proc.poll() is None]
        for t in running:
            t.proc.send_signal(signal.SIGTERM)
        codes = []
        for t in running:
            try:
                codes.append(t.proc.wait(60))
            except subprocess.TimeoutExpired:
                t.proc.kill()
                t.proc.wait()
                codes.append("did not stop within 60 s")
        return codes

    # ------------------------------------------------------------ checker

    def check(self, flood_sent):
        prefix = "flood-%s-" % self.run_id
        requests = {}  # request_id -> (append time, type)
        for at, _, _, value in read_topic(self.stack.brokers, self.request_topic):
            doc = parse(value)
            if doc and str(doc.get("request_id", "")).startswith(prefix):
                requests.setdefault(doc["request_id"], (at, doc.get("type")))
        replies = {}  # request_id -> [(append time, doc)]
        for at, _, _, value in read_topic(self.stack.brokers, self.reply_topic):
            doc = parse(value)
            if doc and str(doc.get("request_id", "")).startswith(prefix):
                replies.setdefault(doc["request_id"], []).append((at, doc))

        like = prefix + "%"
        records = {k: (status, parse(reply)) for k, status, reply in self.stack.query(
            "SELECT idempotency_key, status, reply FROM processed_requests "
            "WHERE idempotency_key LIKE %s", (like,))}
        bookings = {r[0]: r for r in self.stack.query(
            "SELECT id, request_key, section_id, quantity, status, hold_id FROM bookings "
            "WHERE event_id = %s", (self.base,))}
        holds = {r[0]: r for r in self.stack.query(
            "SELECT id, request_key, section_id, quantity, status FROM holds "
            "WHERE event_id = %s", (self.base,))}
        twice = self.stack.query(
            "SELECT kind, request_key, executions FROM duplicate_executions "
            "WHERE request_key LIKE %s", (like,))
        broken = self.stack.query(
            "SELECT section_id, capacity, remaining, booked, held FROM section_invariant "
            "WHERE NOT ok")

        unanswered = sorted(set(requests) - set(replies))
        differing = []  # answered twice, differently
        missing = []  # acknowledged, and not so in the database
        for rid, got in replies.items():
            docs = [d for _, d in got]
            if any(d != docs[0] for d in docs[1:]):
                differing.append((rid, docs))
            reply = docs[0]
            status = reply.get("status")
            if status in STORED:
                record = records.get(rid)
                if not record or record[0] != status or record[1] != reply:
                    missing.append((rid, "record", reply, record))
                    continue
            if status not in ACKNOWLEDGED:
                continue
            why = self.effect_missing(reply, bookings, holds)
            if why:
                missing.append((rid, why, reply, None))

        timing = self.timing(requests, replies)
        figures = {
            "sent": len(requests), "flood_sent": flood_sent,
            "answered": len(replies),
            "lost": len(unanswered) + len(missing),
            "duplicated": len(twice) + len(differing),
            "invariant": "ok" if not broken else "BROKEN",
            "unanswered": unanswered[:10], "missing": missing[:10],
            "differing": differing[:5], "twice": twice[:10], "broken": broken[:10],
            "repeated_replies": sum(len(v) - 1 for v in replies.values()),
            "offsets_backwards": list(self.offsets.backwards),
            "offset_samples": self.offsets.samples,
            "acknowledged": sum(1 for v in replies.values()
                                if v[0][1].get("status") in ACKNOWLEDGED),
        }
        figures.update(timing)
        return figures

    @staticmethod
    def effect_missing(reply, bookings, holds):
        """Why the effect an acknowledged reply promised is not in the
        database, or None when it is there."""
        kind, rid = reply.get("type"), reply.get("request_id")
        if kind == "book":
            b = bookings.get(reply.get("booking_id"))
            if not b or b[1] != rid or b[2] != reply.get("section_id") or \
                    b[3] != reply.get("quantity"):
                return "booking %s" % reply.get("booking_id")
        elif kind == "hold":
            h = holds.get(reply.get("hold_id"))
            if not h or h[1] != rid or h[2] != reply.get("section_id") or \
                    h[3] != reply.get("quantity"):
                return "hold %s" % reply.get("hold_id")
        elif kind == "confirm":
            b = bookings.get(reply.get("booking_id"))
            h = holds.get(reply.get("hold_id"))
            if not b or b[5] != reply.get("hold_id") or not h or h[4] != "confirmed":
                return "confirmed hold %s" % reply.get("hold_id")
        elif kind == "release":
            h = holds.get(reply.get("hold_id"))
            if not h or h[4] != "released":
                return "released hold %s" % reply.get("hold_id")
        elif kind == "cancel":
            b = bookings.get(reply.get("booking_id"))
            if not b or b[4] != "cancelled":
                return "cancelled booking %s" % reply.get("booking_id")
        return None

    def timing(self, requests, replies):
        """For each fault: seconds from it to the first reply read after it
        (as the client reads them: ReplyWatch), the requests in flight at
        it (landed before it, first answered after it or never), when the
        last of those was answered, and the longest pause between replies
        in the 60 s after it (or until the next fault). A request landed when the broker appended
        it."""
        seen = self.replies_seen.first_seen
        replies = {rid: [(seen.get(rid, float("inf")), None)] for rid in replies}
        firsts = sorted(t for t in (v[0][0] for v in replies.values()) if t != float("inf"))
        all_replies = firsts
        out = {"faults": []}
        ends = [at for _, at in self.faults[1:]] + [float("inf")]
        for (what, at), end in zip(self.faults, ends):
            after = [t for t in all_replies if t > at]
            in_flight = [rid for rid, (sent_at, _) in requests.items()
                         if sent_at <= at and (rid not in replies or
                                               min(t for t, _ in replies[rid]) > at)]
            answered_at = [min(t for t, _ in replies[rid]) for rid in in_flight
                           if rid in replies]
            # The first request sent after the fault and answered: when
            # the system served new work again.
            new = [replies[rid][0][0] for rid, (sent_at, _) in requests.items()
                   if sent_at > at and rid in replies and replies[rid][0][0] != float("inf")]
            window = [at] + [t for t in all_replies if at < t <= min(at + 60, end)]
            gaps = [(b - a, b) for a, b in zip(window, window[1:])]
            pause, resumed = max(gaps) if gaps else (None, None)
            out["faults"].append({
                "what": what,
                "at": at - self.started,
                "first_reply_s": (after[0] - at) if after else None,
                "first_new_reply_s": (min(new) - at) if new else None,
                "in_flight": len(in_flight),
                "last_in_flight_answered_s": (max(answered_at) - at) if answered_at else None,
                "longest_pause_s": pause,
                "resumed_s": (resumed - at) if resumed else None,
            })
        out["replies_total"] = len(firsts)
        out["unseen_by_watch"] = len(replies) - len(firsts)
        return out

    def report(self):
        f = self.figures
        lines = ["scenario %s: sent %d, answered %d, lost %d, duplicated %d, invariant %s"
                 % (self.name, f["sent"], f["answered"], f["lost"], f["duplicated"],
                    f["invariant"])]
        for x in f["faults"]:
            lines.append(
                "  %s at +%.1fs: first reply after it %s, first to a request sent after "
                "it %s, longest pause in replies %s (replies again %s after it), in flight "
                "%d, last of those answered %s" % (
                    x["what"], x["at"], fmt_s(x["first_reply_s"]),
                    fmt_s(x["first_new_reply_s"]),
                    fmt_s(x["longest_pause_s"]), fmt_s(x["resumed_s"]), x["in_flight"],
                    fmt_s(x["last_in_flight_answered_s"])))
        lines.append("  acknowledged %d, repeated identical replies %d, committed offsets "
                     "sampled %d times, moved backwards %d, replies the live reader missed %d"
                     % (f["acknowledged"], f["repeated_replies"], f["offset_samples"],
                        len(f["offsets_backwards"]), f["unseen_by_watch"]))
        lines.append("  ticketd: " + ", ".join(
            "%s %d" % (k[len("ticketd_"):-len("_total")], v) for k, v in f["counters"].items()))
        for key in ("unanswered", "missing", "differing", "twice", "broken",
                    "offsets_backwards"):
            if f[key]:
                lines.append("  %s: %s" % (key, f[key]))
        text = "\n".join(lines)
        print(text)
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "a") as out:
            out.write("%s %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), text))

    def assert_clean(self):
        """What every scenario must show: nothing acknowledged lost,
        nothing done twice, every request answered, the invariant, no
        committed offset moving backwards, the flood satisfied."""
        f = self.figures
        assert f["sent"] == f["flood_sent"], f
        assert f["answered"] == f["sent"] and f["lost"] == 0, (f, self.flood_output)
        assert f["duplicated"] == 0 and f["invariant"] == "ok", f
        assert not f["offsets_backwards"], f
        assert f["offset_samples"] > 0, f
        assert f["flood_exit"] == 0, self.flood_output


def fmt_s(v):
    return "-" if v is None else "%.2fs" % v
