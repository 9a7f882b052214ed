#!/usr/bin/python3
# A store SIGKILLed while regions are still splitting has its replicas replaced: five stores
# with a 64 KiB split size, 6 MiB (DEAD_STORE_MB) written through a FUSE mount, one store killed
# a third of the way in, the writes go on (the regions keep splitting, the scheduler keeps
# moving them), and within 240 s of the kill every region has 3 replicas on the 4 stores left
# and a leader; everything written reads back. max-store-down-time is the shortest the
# scheduler takes (20 s) and is set before the kill.
#
# This is the stall of issue 11: snapshots generated before a split were sent after it (the
# new peer's store held the split-off region, so it dropped them, forever), and operators that
# added peers on the dead store held their regions for the 10 minute operator timeout.
#
# Needs root and /dev/fuse (it says so and fails otherwise). Environment: BINDIR (bin/),
# DEAD_STORE_MB (6). Prints PASS/FAIL per check and "N passed, N failed"; exits 1 on failure.

import os
import signal
import time

MB = int(os.environ.get("DEAD_STORE_MB", "6"))
from checks import SplittingCluster, check, run_splitting_cluster, wait_for


def body(c):
    c.http("config", {"max-store-down-time": "20s"})
    sums, failed = {}, []
    n_files = MB * 1024 * 1024 // SplittingCluster.FILE_BYTES
    killed_at, regions_at_kill = None, 0
    for i in range(n_files):
        # A write may fail while the killed store's leaders move: the file is written
        # again (up to 5 times); one that never goes through is a failure below.
        err = c.write_file(i, sums, attempts=5)
        if err is not None:
            failed.append((i, str(err)))
        if i == n_files // 3:
            regions_at_kill = len(c.regions())
            c.stores[4].send_signal(signal.SIGKILL)
            c.stores[4].wait()
            killed_at = time.time()
    check("writes_go_through_after_the_kill", not failed, "%s" % failed[:3])
    # The split checks run every 500 ms and the scheduler hears of a split at the next report:
    # writes that outran them are followed by the splits, so wait for them (with a deadline).
    split = wait_for(lambda: len(c.regions()) > regions_at_kill, 60, 0.5)
    check("regions_split_after_the_kill", split,
          "%d regions at the kill, %d after the writes" % (regions_at_kill, len(c.regions())))
    ok = wait_for(lambda: c.dead_store_replaced(4), 240, 1.0)
    check("replicas_of_a_store_killed_during_splits_are_replaced", ok,
          "%.0f s after the kill, %d regions" % (time.time() - killed_at, len(c.regions())))
    c.check_reads_back(sums)


if __name__ == "__main__":
    run_splitting_cluster("tinykv-dead-during-splits-", body)
