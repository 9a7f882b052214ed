#!/usr/bin/python3
# A scheduler and three tinykv-server processes: twenty splits asked through the admin API while
# clients write; every acknowledged key reads back, every region has three replicas and a leader,
# and a FUSE mount lists, reads and renames files across the regions.
#
# Clients are bin/tinykv-ctl --pd (the client library: region cache, NotLeader/EpochNotMatch
# handling, scans across regions). Needs root and /dev/fuse for the mount part (it says so and
# fails otherwise). Environment: BINDIR (default bin/). Prints PASS/FAIL per check and
# "N passed, N failed"; exits 1 on any failure.

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BINDIR = os.path.join(REPO, os.environ.get("BINDIR", "bin"))
SPLIT_KEYS = ["k%03d" % (14 * i) for i in range(1, 21)]  # k014 .. k280
from checks import check, free_port, results, summary, wait_for


class Cluster:
    def __init__(self, workdir):
        self.workdir = workdir
        self.pd_port, self.http_port = free_port(), free_port()
        self.ports = [free_port() for _ in range(3)]
        self.procs = []

    def spawn(self, args, log):
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.workdir, log), "ab"))
        self.procs.append(p)
        return p

    def start(self):
        self.spawn([os.path.join(BINDIR, "tinyscheduler-server"), "--addr", "127.0.0.1:%d" % self.pd_port,
                    "--http-addr", "127.0.0.1:%d" % self.http_port, "--data-dir",
                    os.path.join(self.workdir, "pd"), "--log-level", "warn"], "pd.log")
        for i, p in enumerate(self.ports):
            self.spawn([os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % p, "--data-dir",
                        os.path.join(self.workdir, "store%d" % i), "--scheduler", "127.0.0.1:%d" % self.pd_port,
                        "--status-addr", "127.0.0.1:0", "--log-level", "warn"], "store%d.log" % i)
            time.sleep(0.3)  # the first store bootstraps; the others join

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def http(self, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d/pd/api/v1/%s" % (self.http_port, path),
                                     data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def regions(self):
        try:
            return self.http("regions")["regions"]
        except Exception:
            return []

    def ctl(self, *args, timeout_s=30):
        return subprocess.run([os.path.join(BINDIR, "tinykv-ctl"), "--pd", "127.0.0.1:%d" % self.pd_port,
                               "--timeout", "10000"] + list(args), capture_output=True, text=True,
                              timeout=timeout_s)


def healthy(regions, want):
    """want regions, each with 3 peers and a leader, tiling the key space."""
    if len(regions) != want:
        return False
    rs = sorted(regions, key=lambda r: r.get("start_key", ""))
    if rs[0].get("start_key", "") != "" or rs[-1].get("end_key", "") != "":
        return False
    for a, b in zip(rs, rs[1:]):
        if a.get("end_key", "") != b.get("start_key", ""):
            return False
    return all(len(r.get("peers", [])) == 3 and r.get("leader", {}).get("id") for r in rs)


def writer(c, ids, acked, later, lock, stop):
    """Writes its keys round after round until stopped (one writer per key). acked[k] is the
    newest acknowledged value; later[k] the values tried after it, which may have applied."""
    rnd = 0
    while not stop.is_set():
        for i in ids:
            k, v = "k%03d" % i, "v%03d.%d" % (i, rnd)
            r = c.ctl("raw", "put", k, v)
            with lock:
                if r.returncode == 0:
                    acked[k] = v
                    later[k] = set()
                else:
                    later.setdefault(k, set()).add(v)
        rnd += 1


def main():
    tmp = tempfile.mkdtemp(prefix="tinykv-splits-")
    c = Cluster(tmp)
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    fuse = None
    try:
        c.start()
        check("one_region_with_three_replicas_and_a_leader", wait_for(lambda: healthy(c.regions(), 1), 60))
        acked, later, lock, stop = {}, {}, threading.Lock(), threading.Event()
        threads = [threading.Thread(target=writer, args=(c, range(t, 300, 3), acked, later, lock, stop))
                   for t in range(3)]
        for t in threads:
            t.start()
        t0 = time.time()
        for batch in range(4):
            keys = SPLIT_KEYS[batch * 5:(batch + 1) * 5]
            try:
                c.http("regions/split", {"split_keys": [k.encode().hex() for k in keys]})
            except Exception as e:
                check("split_batch_%d_accepted" % batch, False, str(e))
            wait_for(lambda: len(c.regions()) >= 1 + 5 * (batch + 1), 30)
        ok = wait_for(lambda: healthy(c.regions(), 21), 90)
        check("twenty_splits_while_writing_give_21_regions_each_with_3_replicas_and_a_leader", ok,
              "%d regions after %.1f s" % (len(c.regions()), time.time() - t0))
        stop.set()
        for t in threads:
            t.join(timeout=300)
        check("writers_wrote_through_the_splits", not any(t.is_alive() for t in threads) and len(acked) == 300,
              "%d keys acked" % len(acked))
        starts = sorted(r.get("start_key", "") for r in c.regions())
        want_starts = sorted([""] + [k.encode().hex().upper() for k in SPLIT_KEYS])
        check("regions_start_at_the_asked_keys", [s.upper() for s in starts] == want_starts,
              "%s" % starts[:4])
        r = c.ctl("raw", "scan", "--limit", "1000")
        got = dict(line.split("\t", 1) for line in r.stdout.splitlines() if "\t" in line)
        missing = [k for k, v in acked.items() if got.get(k) != v and got.get(k) not in later.get(k, ())]
        check("every_acknowledged_key_reads_back_in_one_scan_across_regions", r.returncode == 0 and not missing,
              "%d acked, %d missing %s" % (len(acked), len(missing), missing[:5]))
        sample = sorted(acked)[::37]
        bad = [k for k in sample if c.ctl("raw", "get", k).stdout.strip() not in {acked[k]} | later.get(k, set())]
        check("point_reads_in_every_region", not bad, "%s" % bad[:5])

        # The mount across regions.
        if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
            check("fuse_mount_available", False, "needs root and /dev/fuse")
            return
        fuse = subprocess.Popen([os.path.join(BINDIR, "tinykv-fuse"), "-f", "-o",
                                 "scheduler=127.0.0.1:%d" % c.pd_port, mnt],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "fuse.log"), "ab"))
        check("mounted", wait_for(lambda: os.path.ismount(mnt), 20))
        names = ["k005f", "k105f", "k205f", "k295f"]
        for n in names:
            with open(os.path.join(mnt, n), "w") as f:
                f.write("content of " + n)
        listed = sorted(os.listdir(mnt))
        check("ls_lists_files_of_every_region", all(n in listed for n in names), "%s" % listed[:8])
        check("cat_reads_files_of_every_region",
              all(open(os.path.join(mnt, n)).read() == "content of " + n for n in names))
        os.rename(os.path.join(mnt, "k005f"), os.path.join(mnt, "k299g"))
        os.rename(os.path.join(mnt, "k295f"), os.path.join(mnt, "k001g"))
        listed = os.listdir(mnt)
        check("rename_across_regions_moves_the_file",
              "k005f" not in listed and "k295f" not in listed and
              open(os.path.join(mnt, "k299g")).read() == "content of k005f" and
              open(os.path.join(mnt, "k001g")).read() == "content of k295f")
    finally:
        if fuse is not None:
            subprocess.run(["fusermount3", "-u", mnt], capture_output=True, timeout=30)
            try:
                fuse.wait(timeout=15)
            except subprocess.TimeoutExpired:
                fuse.kill()
                subprocess.run(["fusermount3", "-uz", mnt], capture_output=True, timeout=30)
        c.stop()
        if all(results):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("logs kept in " + tmp)
        summary()
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
