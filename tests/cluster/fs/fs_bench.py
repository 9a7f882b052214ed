#!/usr/bin/python3
# fs_bench.py — small-file and large-file figures of one or more mounted directories, side by side.
#
# Usage: fs_bench.py NAME=DIR [NAME=DIR ...]   (for instance tinykv=/mnt/a passthrough=/mnt/b)
#        fs_bench.py --start   (what `make bench` runs: starts a scheduler and three stores on
#                               loopback, mounts them with tinykv-fuse, builds libfuse's example
#                               passthrough.c and mounts a local directory through it, and
#                               benches both; needs root and /dev/fuse, else says so and stops)
# Prints one table: create+write+close of 1 KiB files from 1 and 16 writers,
# cat of them from 16 readers, stat from 1 and 16 threads (after the attribute
# cache expired), ls -l of a directory of FS_BENCH_FILES files, and a
# sequential write and read of FS_BENCH_MB (1024) MiB; with --start, first the same cluster's
# RawPut bandwidth for 64 KiB values at 1, 4 and 16 in flight (the sequential figures' yardstick).
# Figures only; nothing is asserted.

import os
import shutil
import subprocess
import sys
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))

FILES = int(os.environ.get("FS_BENCH_FILES", "10000"))
BIG_MB = int(os.environ.get("FS_BENCH_MB", "1024"))
ONE_WRITER = int(os.environ.get("FS_BENCH_ONE_WRITER", "200"))
DATA = b"x" * 1024


def in_threads(n, fn):
    """Runs fn(t) in n threads; returns the seconds it took."""
    ths = [threading.Thread(target=fn, args=(t,)) for t in range(n)]
    t0 = time.time()
    for x in ths:
        x.start()
    for x in ths:
        x.join()
    return time.time() - t0


def bench(root):
    out = {}
    d1, d16 = root + "/bench-1", root + "/bench-16"
    os.makedirs(d1)
    os.makedirs(d16)

    def one(t):
        for i in range(ONE_WRITER):
            with open("%s/f%d" % (d1, i), "wb") as f:
                f.write(DATA)

    out["create+write+close 1 KiB, 1 writer (files/s)"] = ONE_WRITER / in_threads(1, one)
    per = FILES // 16

    def many(t):
        for i in range(per):
            with open("%s/t%d-%d" % (d16, t, i), "wb") as f:
                f.write(DATA)

    out["create+write+close 1 KiB, 16 writers (files/s)"] = 16 * per / in_threads(16, many)
    time.sleep(1.2)  # attribute and entry caches expire

    def cat(t):
        for i in range(per):
            with open("%s/t%d-%d" % (d16, t, i), "rb") as f:
                f.read()

    out["cat 1 KiB, 16 readers (files/s)"] = 16 * per / in_threads(16, cat)
    time.sleep(1.2)

    def stat1(t):
        for i in range(ONE_WRITER):
            os.stat("%s/f%d" % (d1, i))

    out["stat, 1 thread (/s)"] = ONE_WRITER / in_threads(1, stat1)
    time.sleep(1.2)

    def stat16(t):
        for i in range(per):
            os.stat("%s/t%d-%d" % (d16, t, i))

    out["stat, 16 threads (/s)"] = 16 * per / in_threads(16, stat16)
    time.sleep(1.2)
    t0 = time.time()
    subprocess.run(["ls", "-l", d16], stdout=subprocess.DEVNULL, check=True)
    out["ls -l of %d files (ms)" % (16 * per)] = (time.time() - t0) * 1000
    block = os.urandom(1 << 20)
    t0 = time.time()
    with open(root + "/bench-big", "wb") as f:
        for _ in range(BIG_MB):
            f.write(block)
    out["sequential write %d MiB (MB/s)" % BIG_MB] = BIG_MB * 1.048576 / (time.time() - t0)
    time.sleep(1.2)
    t0 = time.time()
    with open(root + "/bench-big", "rb") as f:
        while f.read(1 << 20):
            pass
    out["sequential read %d MiB (MB/s)" % BIG_MB] = BIG_MB * 1.048576 / (time.time() - t0)
    os.unlink(root + "/bench-big")
    return out


def start_and_bench():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("fs bench: needs root and /dev/fuse; skipped")
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tempfile

    import test_fuse as tf

    tmp = tempfile.mkdtemp(prefix="tinykv-fsbench-")
    c = tf.Cluster(tmp)
    m = tf.Mount(c, tmp + "/mnt", tmp + "/fuse.log")
    pt_mnt, local = tmp + "/pt", tmp + "/local"
    os.makedirs(pt_mnt)
    os.makedirs(local)
    pt_up = keep = False
    try:
        src = "/usr/share/doc/libfuse3-dev/examples/passthrough.c"
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True,
                               text=True, check=True).stdout.split()
        subprocess.run(["gcc", "-O2", "-o", tmp + "/passthrough", src] + flags, check=True)
        c.start()
        if not c.wait_replicated(30) or not m.start():
            keep = True
            print("fs bench: the cluster or the mount did not come up; logs in %s" % tmp,
                  file=sys.stderr)
            return 1
        # libfuse's passthrough mirrors "/": the local directory is at pt_mnt + local.
        subprocess.run([tmp + "/passthrough", pt_mnt], check=True)
        pt_up = True
        print("== filesystem: tinykv-fuse on 3 replicas vs libfuse's passthrough of a local directory")
        targets = [("tinykv", m.path), ("passthrough", pt_mnt + local)]
        raw_put_bandwidth(c)
        return report(targets)
    finally:
        if pt_up:
            subprocess.run(["fusermount3", "-u", pt_mnt], capture_output=True)
        m.unmount()
        c.kill_all()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def raw_put_bandwidth(c):
    """Prints the cluster's RawPut bandwidth for 64 KiB values (kvload against the leader of the
    one region, before the filesystem figures split it), the yardstick of the sequential
    figures. The 64 keys are overwritten, so the region's data stays at 4 MiB."""
    kvload = os.path.join(REPO, os.environ.get("BUILD", "build"), "tests", "bench", "kvload")
    if not os.path.exists(kvload):
        print("raw-put bandwidth: %s not built (make bench builds it)" % kvload)
        return

    def run(addr, inflight, seconds):
        r = subprocess.run([kvload, "--system", "ours", "--op", "put", "--addr", addr, "--inflight",
                            str(inflight), "--seconds", str(seconds), "--value-size", "65536",
                            "--keys", "64"], capture_output=True, text=True, timeout=120)
        fields = dict(f.split("=", 1) for f in r.stdout.split() if "=" in f)
        ops, errors = int(fields.get("ops", 0)), int(fields.get("errors", 0))
        return ops, errors, float(fields.get("rps", 0))

    addrs = ["127.0.0.1:%d" % p for p in c.ports]
    leader = max(addrs, key=lambda a: run(a, 1, 1)[0])  # followers answer NotLeader
    for inflight in (1, 4, 16):
        ops, errors, rps = run(leader, inflight, 5)
        print("raw put 64 KiB values, %d in flight (MB/s)%s %12.1f   (%d errors)"
              % (inflight, " " * (17 - len(str(inflight))), rps * 65536 / 1e6, errors), flush=True)


def report(targets):
    results = [(name, bench(path)) for name, path in targets]
    rows = list(results[0][1])
    width = max(len(r) for r in rows)
    print("%-*s  %s" % (width, "", "  ".join("%12s" % n for n, _ in results)))
    for r in rows:
        print("%-*s  %s" % (width, r, "  ".join("%12.1f" % res[r] for _, res in results)), flush=True)
    return 0


def main():
    if sys.argv[1:] == ["--start"]:
        return start_and_bench()
    targets = [a.split("=", 1) for a in sys.argv[1:]]
    if not targets:
        print(__doc__ if __doc__ else "usage: fs_bench.py NAME=DIR ...", file=sys.stderr)
        return 2
    return report(targets)


if __name__ == "__main__":
    sys.exit(main())
