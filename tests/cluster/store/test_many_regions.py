#!/usr/bin/python3
# Five stores with a 64 KiB split size: 12 MiB (MANY_REGIONS_MB) written through transactions (files of a FUSE
# mount) splits the key space into a hundred regions or more by itself; the scheduler spreads
# regions and leaders so that no store holds more than 1.25x the mean; a store killed for good
# has its replicas replaced on the others; everything written reads back. (A store killed while
# the regions still split: test_dead_store_during_splits.py.)
#
# Needs root and /dev/fuse (it says so and fails otherwise). Environment: BINDIR (bin/),
# MANY_REGIONS_MB (12 in make test; the figure is 20). Prints PASS/FAIL per check and "N passed, N failed"; exits 1 on failure.

import os
import signal
import time

MB = int(os.environ.get("MANY_REGIONS_MB", "12"))
from checks import SplittingCluster, check, run_splitting_cluster, wait_for


def body(c):
    sums = {}
    t0 = time.time()
    n_files = MB * 1024 * 1024 // SplittingCluster.FILE_BYTES
    for i in range(n_files):
        err = c.write_file(i, sums)
        if err is not None:
            raise err
    print("wrote %d MiB in %d files in %.1f s" % (MB, n_files, time.time() - t0), flush=True)

    def spread():
        rs = c.regions()
        if len(rs) < 100 or not all(len(r["peers"]) == 3 and r.get("leader", {}).get("id") for r in rs):
            return None
        per_store, leaders = {}, {}
        for r in rs:
            for p in r["peers"]:
                per_store[p["store_id"]] = per_store.get(p["store_id"], 0) + 1
            leaders[r["leader"]["store_id"]] = leaders.get(r["leader"]["store_id"], 0) + 1
        if len(per_store) < 5:
            return None
        mean_r = sum(per_store.values()) / 5.0
        mean_l = len(rs) / 5.0
        ok = max(per_store.values()) <= 1.25 * mean_r and max(leaders.values(), default=0) <= 1.25 * mean_l
        return (len(rs), sorted(per_store.values()), sorted(leaders.values())) if ok else None

    t1 = time.time()
    got = wait_for(spread, 300, 1.0)
    check("a_hundred_regions_or_more_spread_within_1_25x_of_the_mean", got is not None,
          "%s after %.0f s (%d regions now)" % (got, time.time() - t1, len(c.regions())))
    # A store killed for good: its replicas are made up on the others. The down time must be
    # at least twice the stores' heartbeat interval (10 s): the scheduler refuses less.
    c.http("config", {"max-store-down-time": "20s"})
    c.stores[4].send_signal(signal.SIGKILL)
    c.stores[4].wait()
    t2 = time.time()
    ok = wait_for(lambda: c.dead_store_replaced(4), 240, 1.0)
    check("replicas_of_a_dead_store_are_replaced_on_the_others", ok,
          "after %.0f s" % (time.time() - t2))
    c.check_reads_back(sums)


if __name__ == "__main__":
    run_splitting_cluster("tinykv-many-regions-", body)
