# checks.py — what the store layer's multi-process test scripts share: PASS/FAIL lines, free
# ports, bounded waits, and the splitting five-store cluster with a mount (SplittingCluster). Imported
# by test_splits.py, test_many_regions.py and test_dead_store_during_splits.py (not a test itself).

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

results = []


def check(name, ok, detail=""):
    """Records and prints one check: PASS or FAIL, its name and an optional detail."""
    results.append(ok)
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (" -- " + detail) if detail else ""), flush=True)


def summary():
    """Prints the "N passed, N failed" line run_layer.sh reads; returns whether all passed."""
    passed = sum(1 for r in results if r)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    return all(results)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout_s, step_s=0.2):
    """Polls cond() until it is true or timeout_s passed; returns its last value."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step_s)
    return cond()


class SplittingCluster:
    """A scheduler and N stores that split at 64 KiB, with a FUSE mount of them: what the
    many-regions scripts start. Use as a context manager; logs stay in .tmp when a check failed."""

    FILE_BYTES = 64 * 1024

    def __init__(self, bindir, prefix, n_stores=5):
        import tempfile
        self.bindir, self.n_stores = bindir, n_stores
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.pd_port, self.http_port = free_port(), free_port()
        self.procs, self.stores, self.fuse = [], [], None
        self.mnt = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mnt)

    def http(self, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d/pd/api/v1/%s" % (self.http_port, path),
                                     data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def regions(self):
        try:
            return self.http("regions")["regions"]
        except Exception:
            return []

    def _log(self, name):
        return open(os.path.join(self.tmp, name), "w")

    def start(self):
        """Starts everything and mounts; records the checks cluster_forms and mounted."""
        self.procs.append(subprocess.Popen(
            [os.path.join(self.bindir, "tinyscheduler-server"), "--addr", "127.0.0.1:%d" % self.pd_port,
             "--http-addr", "127.0.0.1:%d" % self.http_port, "--data-dir", os.path.join(self.tmp, "pd"),
             "--log-level", "warn"], stderr=self._log("pd.log")))
        for i in range(self.n_stores):
            p = subprocess.Popen(
                [os.path.join(self.bindir, "tinykv-server"), "--addr", "127.0.0.1:%d" % free_port(),
                 "--data-dir", os.path.join(self.tmp, "s%d" % i), "--scheduler", "127.0.0.1:%d" % self.pd_port,
                 "--status-addr", "127.0.0.1:0", "--region-split-size", "64KiB",
                 "--split-check-ms", "500", "--log-level", "warn"], stderr=self._log("s%d.log" % i))
            self.procs.append(p)
            self.stores.append(p)
            time.sleep(0.3)
        check("cluster_forms", wait_for(lambda: len(self.regions()) == 1 and len(self.regions()[0]["peers"]) == 3, 60))
        self.fuse = subprocess.Popen([os.path.join(self.bindir, "tinykv-fuse"), "-f", "-o",
                                      "scheduler=127.0.0.1:%d" % self.pd_port, self.mnt],
                                     stdout=subprocess.DEVNULL, stderr=self._log("fuse.log"))
        check("mounted", wait_for(lambda: os.path.ismount(self.mnt), 30))

    def write_file(self, i, sums, attempts=1):
        """Writes file number i (64 KiB) through the mount, recording its sha256 in sums;
        tries up to `attempts` times (a store just killed may fail a write until leaders move)
        and returns the last error or None."""
        d = os.path.join(self.mnt, "d%02d" % (i % 16))
        path = os.path.join(d, "f%04d" % i)
        data = hashlib.sha256(b"%d" % i).digest() * (self.FILE_BYTES // 32)
        err = None
        for _ in range(attempts):
            try:
                os.makedirs(d, exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
                sums[path] = hashlib.sha256(data).hexdigest()
                return None
            except OSError as e:
                err = e
        return err

    def dead_store_replaced(self, n_live):
        """Every region has 3 peers, all on the n_live stores left, and a leader."""
        rs = self.regions()
        ids = {p["store_id"] for r in rs for p in r["peers"]}
        return bool(rs) and len(ids) == n_live and all(
            len(r["peers"]) == 3 and r.get("leader", {}).get("id") for r in rs)

    def check_reads_back(self, sums):
        bad = []
        for p, s in sums.items():
            try:
                with open(p, "rb") as f:
                    if hashlib.sha256(f.read()).hexdigest() != s:
                        bad.append(p)
            except OSError as e:
                bad.append("%s (%s)" % (p, e.strerror))
        check("everything_written_reads_back", not bad, "%d of %d differ %s" % (len(bad), len(sums), bad[:3]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.fuse is not None:
            subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True, timeout=30)
            try:
                self.fuse.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.fuse.kill()
                subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True, timeout=30)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        if all(results) and exc[0] is None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print("logs kept in " + self.tmp)
        return False


def run_splitting_cluster(prefix, body):
    """The frame of a SplittingCluster script: fails at once without root or /dev/fuse, else
    starts the cluster (BINDIR, default bin/), runs body(cluster), prints the summary and exits
    1 when any check failed."""
    import sys
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        check("root_and_dev_fuse", False, "needs root and /dev/fuse")
        summary()
        sys.exit(1)
    repo = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
    try:
        with SplittingCluster(os.path.join(repo, os.environ.get("BINDIR", "bin")), prefix) as c:
            c.start()
            body(c)
    finally:
        summary()
    sys.exit(0 if all(results) else 1)
