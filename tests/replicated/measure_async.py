#!/usr/bin/env python3
"""A measurement, not a test: the pg_failover scenario with the standby
asynchronous (synchronous_standby_names empty), to see what the checker
finds when a COMMIT returns before the standby has it. It asserts nothing
and prints the checker's figures (docs/replication.md has what it found).

    KAFKA_LIBS=... /usr/bin/python3 tests/replicated/measure_async.py [RUNS [BEHIND]]

On its own replicated stack (build/measure-async-stack), made and removed
here; each run kills the primary mid-flood, promotes the standby, then
lets the old primary rejoin (asynchronous again) for the next run.

On loopback an asynchronous standby is microseconds behind, and a primary
killed at a random moment rarely has a commit it has not sent yet. BEHIND
(seconds, default 0) makes the standby that far behind when the primary
dies, as a network hiccup between them would: the primary's WAL sender is
stopped (SIGSTOP) BEHIND seconds before the kill, so that nothing of that
last stretch reaches the standby (with a synchronous standby the same
pause would hold every COMMIT instead, and lose nothing).
"""

import os
import shutil
import signal
import sys
import time

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
sys.path.insert(0, os.path.dirname(__file__))

from harness import REPO, Stack  # noqa: E402
from replicated import Scenario  # noqa: E402


def wal_sender(stack):
    """The pid of the primary's WAL sender (a process the stack started)."""
    conn = psycopg2.connect(stack.pg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_replication")
            rows = cur.fetchall()
    finally:
        conn.close()
    if len(rows) != 1:
        raise RuntimeError("not one WAL sender on the primary: %s" % rows)
    return rows[0][0]


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    behind = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    if not 1 <= runs <= 10 or not 0 <= behind <= 5:
        sys.exit("measure_async.py: RUNS must be 1 to 10, BEHIND 0 to 5 seconds")
    state_dir = os.path.join(REPO, "build", "measure-async-stack")
    shutil.rmtree(state_dir, ignore_errors=True)
    os.makedirs(state_dir)
    stack = Stack(state_dir, replicated=True)
    stack.up()
    totals = {"sent": 0, "acknowledged": 0, "lost": 0, "duplicated": 0, "broken": 0}
    try:
        stack.script("pg-sync", "off")
        for i in range(runs):
            run = Scenario(stack, "pg_failover_async", base=340000 + i * 1000,
                           n=4000, rate=250)
            try:
                run.start_flood()
                sender = None
                if behind:
                    run.wait_until(5 - behind)
                    sender = wal_sender(stack)
                    os.kill(sender, signal.SIGSTOP)
                run.wait_until(5)
                try:
                    run.fault("pg-kill-primary, standby asynchronous%s" % (
                        ", %.1fs behind" % behind if behind else ""), "pg-kill-primary")
                finally:
                    if sender:
                        try:
                            os.kill(sender, signal.SIGCONT)
                        except ProcessLookupError:
                            pass  # killed with the primary, as it should be
                stack.script("pg-promote")
                f = run.finish()
            finally:
                run.stop_members()
            stack.script("pg-rejoin")
            totals["sent"] += f["sent"]
            totals["acknowledged"] += f["acknowledged"]
            totals["lost"] += f["lost"]
            totals["duplicated"] += f["duplicated"]
            totals["broken"] += f["invariant"] != "ok"
            time.sleep(1)
    finally:
        stack.down()
    print("measure_async: %d run(s), standby %.1fs behind: sent %d, acknowledged %d, lost %d, duplicated %d, "
          "runs with the invariant broken %d" % (runs, behind, totals["sent"], totals["acknowledged"],
                                                 totals["lost"], totals["duplicated"],
                                                 totals["broken"]))


if __name__ == "__main__":
    main()
