#!/usr/bin/python3
# bench_regions.py — `make bench`: a cluster of a scheduler and three stores split into many
# regions (1,000 by default), then left idle: each store's CPU use and the leader changes. Then
# one region is loaded with BENCH_SNAP_MB (200) MiB and given a replica on a fourth store, with
# the schedulers off: how long its snapshot takes, and how many regions on the other stores
# changed leader or term meanwhile.
#
# Environment: BINDIR (bin/), BENCH_REGIONS (1000), BENCH_IDLE_S (60), BENCH_SNAP_MB (200; 0
# skips the snapshot part), BENCH_LOG_LEVEL (warn: the log level of the stores and the
# scheduler), BENCH_KEEP (keep the directory and logs). Prints figures; asserts nothing.

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BINDIR = os.path.join(REPO, os.environ.get("BINDIR", "bin"))
REGIONS = int(os.environ.get("BENCH_REGIONS", "1000"))
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "60"))
SNAP_MB = int(os.environ.get("BENCH_SNAP_MB", "200"))
LOG_LEVEL = os.environ.get("BENCH_LOG_LEVEL", "warn")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, path, body=None, method=None):
    req = urllib.request.Request("http://127.0.0.1:%d/%s" % (port, path),
                                 data=None if body is None else json.dumps(body).encode(),
                                 method=method or ("GET" if body is None else "POST"))
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def snapshot_part(tmp, pd_port, http_port, procs, terms, regions):
    """Loads the region holding "bench-" keys with SNAP_MB MiB, then adds a replica of it on a
    new fourth store and watches every region's leader and term on the first three meanwhile."""
    for name in ("balance-region-scheduler", "balance-leader-scheduler"):
        try:
            http(http_port, "pd/api/v1/schedulers/" + name, method="DELETE")
        except Exception:
            pass
    region = http(http_port, "pd/api/v1/region/key/bench-0000000000")
    leader_store = region["leader"]["store_id"]
    addr = http(http_port, "pd/api/v1/store/%d" % leader_store)["store"]["address"]
    t0 = time.time()
    out = subprocess.run([os.path.join(BINDIR, "tinykv-ctl"), "--addr", addr, "bench", "raw", "--ops",
                          str(SNAP_MB * 16), "--threads", "4", "--value-size", str(64 * 1024)],
                         capture_output=True, text=True, timeout=1800)
    size = http(http_port, "pd/api/v1/region/id/%d" % region["id"]).get("approximate_size_bytes", 0)
    print("loaded region %d with %d MiB in %.1f s (%s; %.0f MiB reported)" % (
        region["id"], SNAP_MB, time.time() - t0, out.stdout.strip().splitlines()[0] if out.stdout else out.stderr.strip(),
        size / 1048576.0))
    sp = free_port()
    procs.append(subprocess.Popen(
        [os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % free_port(),
         "--data-dir", os.path.join(tmp, "s3"), "--scheduler", "127.0.0.1:%d" % pd_port,
         "--status-addr", "127.0.0.1:%d" % sp, "--log-level", "warn",
         "--region-max-size", "1GiB", "--region-split-size", "768MiB"],
        stderr=open(os.path.join(tmp, "s3.log"), "w")))
    new_store = None
    deadline = time.time() + 60
    while new_store is None and time.time() < deadline:
        ids = [s["store"]["id"] for s in http(http_port, "pd/api/v1/stores")["stores"]]
        known = {p["store_id"] for r in regions() for p in r["peers"]}
        fresh = [i for i in ids if i not in known]
        new_store = fresh[0] if fresh else None
        time.sleep(0.5)
    before = terms()
    t1 = time.time()
    http(http_port, "pd/api/v1/operators", {"name": "add-peer", "region_id": region["id"], "store_id": new_store})
    changed, done = set(), False
    while time.time() - t1 < 900 and not done:
        now = terms()
        changed |= {k for k, v in now.items() if k in before and before[k] != v}
        r = http(http_port, "pd/api/v1/region/id/%d" % region["id"])
        done = any(p["store_id"] == new_store for p in r["peers"]) and not any(
            p["store_id"] == new_store for p in r.get("pending_peers", []))
        time.sleep(0.5)
    print("%d MiB region snapshot to a new store: %s in %.1f s; meanwhile %d of %d peers on the "
          "other stores changed term or leader" % (SNAP_MB, "caught up" if done else "NOT caught up",
                                                   time.time() - t1, len(changed), len(before)))
    print("peak RSS per store (the new one last): %s" % ", ".join(
        "%.0f MiB" % (peak_rss_kib(p.pid) / 1024.0) for p in procs[1:]))


def main():
    tmp = tempfile.mkdtemp(prefix="tinykv-bench-regions-")
    pd_port, http_port = free_port(), free_port()
    procs = []
    status_ports = []
    try:
        procs.append(subprocess.Popen(
            [os.path.join(BINDIR, "tinyscheduler-server"), "--addr", "127.0.0.1:%d" % pd_port,
             "--http-addr", "127.0.0.1:%d" % http_port, "--data-dir", os.path.join(tmp, "pd"),
             "--log-level", LOG_LEVEL], stderr=open(os.path.join(tmp, "pd.log"), "w")))
        for i in range(3):
            sp = free_port()
            status_ports.append(sp)
            procs.append(subprocess.Popen(
                [os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % free_port(),
                 "--data-dir", os.path.join(tmp, "s%d" % i), "--scheduler", "127.0.0.1:%d" % pd_port,
                 "--status-addr", "127.0.0.1:%d" % sp, "--log-level", LOG_LEVEL,
                 # One region must hold the whole BENCH_SNAP_MB without splitting.
                 "--region-max-size", "1GiB", "--region-split-size", "768MiB"],
                stderr=open(os.path.join(tmp, "s%d.log" % i), "w")))
            time.sleep(0.3)

        def regions():
            try:
                return http(http_port, "pd/api/v1/regions")["regions"]
            except Exception:
                return []

        def count():
            try:
                return http(http_port, "pd/api/v1/regions/count")["count"]
            except Exception:
                return 0

        def ready(n):
            rs = regions()
            return len(rs) >= n and all(len(r["peers"]) == 3 and r.get("leader", {}).get("id") for r in rs)

        deadline = time.time() + 60
        while not ready(1) and time.time() < deadline:
            time.sleep(0.2)
        # An asleep leader hears of its operator only in its next report (every 10 s): with PD's
        # default of 4 transfers at a time, spreading the leaders of a thousand new regions
        # would take many minutes, so the bench allows more at once (pd-ctl's `config set`).
        http(http_port, "pd/api/v1/config", {"leader-schedule-limit": 128})
        t0 = time.time()
        keys = ["r%05d" % i for i in range(1, REGIONS)]
        for i in range(0, len(keys), 200):
            batch = keys[i:i + 200]
            for _ in range(100):
                try:
                    http(http_port, "pd/api/v1/regions/split", {"split_keys": [k.encode().hex() for k in batch]})
                    break
                except Exception:
                    time.sleep(0.2)  # the region still has an operator: wait for it
            deadline = time.time() + 120
            while count() < 1 + i + len(batch) and time.time() < deadline:
                time.sleep(0.2)
        deadline = time.time() + 300
        while not ready(REGIONS) and time.time() < deadline:
            time.sleep(0.5)
        n = len(regions())
        split_s = time.time() - t0
        print("%d regions with three replicas and a leader after %.1f s of splitting (%.1f splits/s)" % (
            n, split_s, (n - 1) / split_s if split_s > 0 else 0.0))

        def terms():
            out = {}
            for sp in status_ports:
                for r in http(sp, "regions")["regions"]:
                    out[(sp, r["region_id"])] = (r.get("term"), r.get("leader_peer_id"))
            return out

        # The scheduler spreads the leaders (the parent's store leads every new region at
        # first): measure once it has had no operator for 12 s, longer than an asleep leader's
        # report interval (10 s), so the scheduler has seen every region as it is now.
        quiet_since, t1 = None, time.time()
        while time.time() - t1 < 300:
            try:
                busy = len(http(http_port, "pd/api/v1/operators")) > 0
            except Exception:
                busy = True
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.time()
            elif time.time() - quiet_since >= 12:
                break
            time.sleep(0.5)
        leaders = {}
        for r in regions():
            s = r.get("leader", {}).get("store_id")
            leaders[s] = leaders.get(s, 0) + 1
        print("leaders per store after %.1f s of balancing: %s" % (time.time() - t1, sorted(leaders.values())))
        before = terms()
        c0 = [cpu_s(p.pid) for p in procs[1:]]
        w0 = time.time()
        time.sleep(IDLE_S)
        c1 = [cpu_s(p.pid) for p in procs[1:]]
        wall = time.time() - w0
        after = terms()
        changes = sum(1 for k, v in after.items() if k in before and before[k] != v)
        use = ", ".join("%.1f%%" % (100.0 * (b - a) / wall) for a, b in zip(c0, c1))
        print("idle %d regions for %.0f s: CPU per store %s of one core; %d of %d peers changed "
              "term or leader" % (n, wall, use, changes, len(after)))
        if SNAP_MB > 0:
            snapshot_part(tmp, pd_port, http_port, procs, terms, regions)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        if os.environ.get("BENCH_KEEP"):
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
