#!/usr/bin/env python3
"""A measurement, not a test: the pg_failover scenario with the standby
asynchronous (synchronous_standby_names empty), to see what the checker
finds when a COMMIT returns before the standby has it. It asserts nothing
and prints the checker's figures (docs/replication.md has what it found).

    KAFKA_LIBS=... /usr/bin/python3 tests/replicated/measure_async.py [RUNS]

On its own replicated stack (build/measure-async-stack), made and removed
here; each run kills the primary mid-flood, promotes the standby, then
lets the old primary rejoin (asynchronous again) for the next run.
"""

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
sys.path.insert(0, os.path.dirname(__file__))

from harness import REPO, Stack  # noqa: E402
from replicated import Scenario  # noqa: E402


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    if not 1 <= runs <= 10:
        sys.exit("measure_async.py: RUNS must be 1 to 10")
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
                run.wait_until(5)
                run.fault("pg-kill-primary, standby asynchronous", "pg-kill-primary")
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
    print("measure_async: %d run(s): sent %d, acknowledged %d, lost %d, duplicated %d, "
          "runs with the invariant broken %d" % (runs, totals["sent"], totals["acknowledged"],
                                                 totals["lost"], totals["duplicated"],
                                                 totals["broken"]))


if __name__ == "__main__":
    main()
