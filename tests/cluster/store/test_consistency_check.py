#!/usr/bin/python3
# A scheduler and three tinykv-server processes: `tinykv-ctl region check` starts a consistency
# check at the region's leader and prints every replica's hash at the check's index; replicas that
# agree say "consistent" (exit 0); a paused follower gives no verdict by the deadline (exit 3); a
# follower whose kv DB got a stray key behind Raft's back (the store stopped, its kv DB opened by
# `tinykv-server --standalone` (same kv/ layout) and written with a RawPut, the store started again) is reported as
# a MISMATCH (exit 1) while the others stay consistent.
# Environment: BINDIR (default bin/). Prints PASS/FAIL per check and "N passed, N failed"; exits 1
# on any failure.

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from checks import free_port, summary, wait_for
from checks import check as check_detail
from test_splits import BINDIR, Cluster, healthy


def check(name, ok, detail=""):
    """A check whose detail (the command's output) is printed only when it fails."""
    check_detail(name, ok, "" if ok else detail)


def region_check(c, *args, timeout_ms=10000):
    return subprocess.run([os.path.join(BINDIR, "tinykv-ctl"), "--pd-http", "127.0.0.1:%d" % c.http_port,
                           "--timeout", str(timeout_ms), "region", "check"] + list(args),
                          capture_output=True, text=True, timeout=timeout_ms / 1000 + 20)


def main():
    tmp = tempfile.mkdtemp(prefix="tinykv-consistency-")
    c = Cluster(tmp)
    try:
        c.start()
        check("one_region_with_three_replicas_and_a_leader", wait_for(lambda: healthy(c.regions(), 1), 60))
        for i in range(20):
            c.ctl("raw", "put", "key%02d" % i, "value%02d" % i)
        region = c.regions()[0]["id"]

        r = region_check(c, str(region))
        rows = [l for l in r.stdout.splitlines() if l.split() and l.split()[0].isdigit()]
        hashes = {l.split()[5] for l in rows}
        check("region_check_exits_0_and_says_consistent",
              r.returncode == 0 and "consistent" in r.stdout.splitlines()[-1], r.stdout + r.stderr)
        check("it_prints_three_replicas_with_one_hash", len(rows) == 3 and len(hashes) == 1, r.stdout)

        r = region_check(c, str(region), "--json")
        try:
            j = json.loads(r.stdout)
        except ValueError:
            j = {}
        reps = j.get("replicas", [])
        check("json_names_each_replica_its_index_and_hash",
              r.returncode == 0 and j.get("result") == "consistent" and len(reps) == 3 and
              len({x["hash"] for x in reps}) == 1 and all(x["index"] == j["index"] > 0 for x in reps) and
              sum(1 for x in reps if x["is_leader"]) == 1, r.stdout + r.stderr)
        first_index = j.get("index", 0)

        r = region_check(c, str(region), "--json")
        check("a_second_check_runs_at_a_later_index", r.returncode == 0 and
              json.loads(r.stdout or "{}").get("index", 0) > first_index, r.stdout + r.stderr)

        # A paused follower answers nothing: no verdict from it by the deadline.
        reg = c.regions()[0]
        follower_store = next(p["store_id"] for p in reg["peers"] if p["id"] != reg["leader"]["id"])
        stores = c.http("stores")["stores"]
        addr = next(s["store"]["address"] for s in stores if s["store"]["id"] == follower_store)
        proc = c.procs[1 + c.ports.index(int(addr.rsplit(":", 1)[1]))]
        proc.send_signal(signal.SIGSTOP)
        try:
            r = region_check(c, str(region), timeout_ms=2500)
        finally:
            proc.send_signal(signal.SIGCONT)
        check("a_paused_follower_gives_timeout_and_exit_3",
              r.returncode == 3 and "TIMEOUT" in r.stdout, "rc %d: %s%s" % (r.returncode, r.stdout, r.stderr))
        r = region_check(c, str(region))
        check("after_it_resumes_the_region_is_consistent", r.returncode == 0, r.stdout + r.stderr)

        # Corrupt that follower: stop it, write a stray key into its kv DB directly, start it again.
        i = c.ports.index(int(addr.rsplit(":", 1)[1]))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        sa_port = free_port()
        sa = c.spawn([os.path.join(BINDIR, "tinykv-server"), "--standalone", "--addr", "127.0.0.1:%d" % sa_port,
                      "--data-dir", os.path.join(tmp, "store%d" % i), "--status-addr", "127.0.0.1:0",
                      "--log-level", "warn"], "standalone.log")
        put = wait_for(lambda: subprocess.run(
            [os.path.join(BINDIR, "tinykv-ctl"), "--addr", "127.0.0.1:%d" % sa_port, "raw", "put", "key05x",
             "stray"], capture_output=True, timeout=30).returncode == 0, 20)
        sa.send_signal(signal.SIGTERM)
        sa.wait(timeout=30)
        check("a_stray_key_was_written_into_the_followers_kv_db", put)
        c.spawn([os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % c.ports[i], "--data-dir",
                 os.path.join(tmp, "store%d" % i), "--scheduler", "127.0.0.1:%d" % c.pd_port,
                 "--status-addr", "127.0.0.1:0", "--log-level", "warn"], "store%d.log" % i)
        r = wait_for(lambda: (lambda r: r if r.returncode != 3 else None)(region_check(c, str(region), "--json")),
                     30, 0.5)
        j = json.loads(r.stdout or "{}") if r else {}
        by_store = {x["store_id"]: x for x in j.get("replicas", [])}
        check("the_corrupted_follower_is_reported_as_a_mismatch_with_exit_1",
              r is not None and r.returncode == 1 and j.get("result") == "MISMATCH" and
              by_store.get(follower_store, {}).get("state") == "MISMATCH" and
              all(x["state"] == "consistent" for k, x in by_store.items() if k != follower_store),
              r.stdout + r.stderr if r else "no answer")
        r = region_check(c, str(region))
        check("the_table_says_MISMATCH", r.returncode == 1 and "MISMATCH" in r.stdout.splitlines()[-1],
              r.stdout + r.stderr)

        r = region_check(c, "0")
        check("region_check_0_is_a_usage_error", r.returncode == 2, r.stderr)
        r = region_check(c, "424242")
        check("an_unknown_region_is_an_api_error", r.returncode == 1, r.stderr)
    finally:
        c.stop()
    ok = summary()
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("logs kept in", tmp)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
