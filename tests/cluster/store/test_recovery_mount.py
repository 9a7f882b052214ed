#!/usr/bin/python3
# File creates through a tinykv-fuse mount while the scheduler is SIGKILLed and restarted every 2-3 s, then while the leader store is SIGKILLed.
#
# Two writer threads create files (open, write, close) through one mount with
# the default 5 s operation timeout. For each restart or kill the test prints
# how long until a create started after it succeeded, and which errors the
# writers saw meanwhile (errno, how many, the longest run of them). Nothing
# asserts a time: each recovery is waited for within a generous bound
# (BOUND_S). At the end every create that was acknowledged (its close
# succeeded) must be readable.
#
# Needs root and /dev/fuse (fails, never skips, without them).
# Environment: BINDIR (default bin/). Prints PASS/FAIL per check and
# "N passed, N failed"; exits 1 on any failure.

import errno
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BINDIR = os.path.join(REPO, os.environ.get("BINDIR", "bin"))
BOUND_S = 30.0
RESTARTS = int(os.environ.get("RECOVERY_RESTARTS", "5"))
KILLS = 2
WRITERS = 2

results = []
figures = []


def check(name, ok, detail=""):
    results.append(ok)
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (" -- " + detail) if detail else ""), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_for(cond, timeout_s, step=0.02):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


class Proc:
    def __init__(self, args, log_path):
        self.args = args
        self.log_path = log_path
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "ab"))

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Writer(threading.Thread):
    """Creates files dir/wN/fK one after another; records every attempt."""

    def __init__(self, mnt, n):
        super().__init__(daemon=True)
        self.dir = os.path.join(mnt, "w%d" % n)
        self.ops = []  # (start, end, errno or 0, name)
        self.acked = []
        self.stop = False
        self.k = 0

    def run(self):
        while not self.stop:
            name = os.path.join(self.dir, "f%06d" % self.k)
            t0 = time.time()
            err = 0
            try:
                with open(name, "wb") as f:
                    f.write(b"x%d" % self.k)
            except OSError as e:
                err = e.errno or -1
            t1 = time.time()
            self.ops.append((t0, t1, err, name))
            if err == 0:
                self.acked.append((name, b"x%d" % self.k))
            self.k += 1
            time.sleep(0.005)


def recovered_after(writers, t, bound_s=BOUND_S):
    """Seconds from t until a create started at or after t succeeded (in every writer), or None."""
    deadline = t + bound_s
    while time.time() < deadline:
        ends = []
        for w in writers:
            ok = [end for (start, end, err, _) in list(w.ops) if start >= t and err == 0]
            if not ok:
                break
            ends.append(min(ok))
        else:
            return max(ends) - t
        time.sleep(0.01)
    return None


def errors_between(writers, t0, t1):
    """{errno name: count}, and the longest time any writer saw only errors."""
    counts = {}
    longest = 0.0
    for w in writers:
        run_start = None
        for (start, end, err, _) in list(w.ops):
            if end < t0 or start > t1:
                continue
            if err:
                name = errno.errorcode.get(err, str(err))
                counts[name] = counts.get(name, 0) + 1
                if run_start is None:
                    run_start = start
                longest = max(longest, end - run_start)
            else:
                run_start = None
    return counts, longest


def longest_op(writers, t0, t1):
    return max([end - start for w in writers for (start, end, _, _) in list(w.ops) if start >= t0 and start <= t1]
               or [0.0])


def main():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("FAIL needs root and /dev/fuse")
        print("0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="tinykv-recovery-mount-")
    pd_port, http_port = free_port(), free_port()
    pd = Proc([os.path.join(BINDIR, "tinyscheduler-server"), "--addr", "127.0.0.1:%d" % pd_port,
               "--http-addr", "127.0.0.1:%d" % http_port, "--data-dir", os.path.join(tmp, "pd"),
               "--log-level", "warn"], os.path.join(tmp, "pd.log"))
    ports = [free_port() for _ in range(3)]
    stores = [Proc([os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % p,
                    "--data-dir", os.path.join(tmp, "store%d" % i), "--scheduler", "127.0.0.1:%d" % pd_port,
                    "--status-addr", "127.0.0.1:0", "--log-level", "warn"], os.path.join(tmp, "store%d.log" % i))
              for i, p in enumerate(ports)]
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    fuse = Proc([os.path.join(BINDIR, "tinykv-fuse"), "-f", "-o", "scheduler=127.0.0.1:%d" % pd_port, mnt],
                os.path.join(tmp, "fuse.log"))

    def http(path):
        with urllib.request.urlopen("http://127.0.0.1:%d/pd/api/v1/%s" % (http_port, path), timeout=3) as r:
            return json.loads(r.read())

    def leader_index():
        try:
            r = http("regions")["regions"][0]
            if len(r["peers"]) != 3 or not r.get("leader", {}).get("store_id"):
                return None
            for s in http("stores")["stores"]:
                if s["store"]["id"] == r["leader"]["store_id"]:
                    addr = s["store"]["address"]
                    return next((i for i, p in enumerate(ports) if addr == "127.0.0.1:%d" % p), None)
        except Exception:
            return None
        return None

    writers = []
    try:
        pd.start()
        for s in stores:
            s.start()
            time.sleep(0.3)
        check("three_replicas_and_a_leader_within_30s", wait_for(lambda: leader_index() is not None, 30, 0.2))
        fuse.start()
        check("mounted", wait_for(lambda: os.path.ismount(mnt), 15))
        for n in range(WRITERS):
            os.mkdir(os.path.join(mnt, "w%d" % n))
        writers = [Writer(mnt, n) for n in range(WRITERS)]
        for w in writers:
            w.start()
        time.sleep(1)

        seed = int(os.environ.get("TEST_SEED", str(int(time.time()))))
        print("TEST_SEED=%d" % seed, flush=True)
        rnd = random.Random(seed)
        for r in range(RESTARTS):
            time.sleep(2 + rnd.random())
            killed = time.time()
            pd.kill()
            time.sleep(0.1 + 0.4 * rnd.random())
            pd.start()
            if not wait_for(lambda: port_open(pd_port), BOUND_S, 0.002):
                check("scheduler_restarts", False)
                break
            up = time.time()
            took = recovered_after(writers, up)
            counts, streak = errors_between(writers, killed, up + (took or BOUND_S))
            longest = longest_op(writers, killed, up + (took or BOUND_S))
            line = ("scheduler restart %d: down %.2f s; creates succeed again %.2f s after it listens; "
                    "meanwhile errors %s (longest run %.2f s), longest create %.2f s"
                    % (r + 1, up - killed, took if took is not None else -1, counts or "none", streak, longest))
            print(line, flush=True)
            figures.append(line)
            check("creates_resume_after_scheduler_restart_%d" % (r + 1), took is not None)

        for k in range(KILLS):
            l = None
            wait_for(lambda: leader_index() is not None, BOUND_S, 0.1)
            l = leader_index()
            if l is None:
                check("leader_known_before_kill_%d" % (k + 1), False)
                break
            killed = time.time()
            stores[l].kill()
            took = recovered_after(writers, killed)
            counts, streak = errors_between(writers, killed, killed + (took or BOUND_S))
            longest = longest_op(writers, killed, killed + (took or BOUND_S))
            line = ("leader store SIGKILL %d: creates succeed again %.2f s after the kill; "
                    "meanwhile errors %s (longest run %.2f s), longest create %.2f s"
                    % (k + 1, took if took is not None else -1, counts or "none", streak, longest))
            print(line, flush=True)
            figures.append(line)
            check("creates_resume_after_leader_kill_%d" % (k + 1), took is not None)
            stores[l].start()
            wait_for(lambda: port_open(ports[l]), BOUND_S)
            time.sleep(3)  # it catches up before the next kill
    finally:
        for w in writers:
            w.stop = True
        for w in writers:
            w.join(timeout=30)
        lost = []
        if os.path.ismount(mnt):
            for w in writers:
                for name, data in w.acked:
                    try:
                        with open(name, "rb") as f:
                            if f.read() != data:
                                lost.append(name)
                    except OSError:
                        lost.append(name)
            check("every_acknowledged_create_is_readable", not lost,
                  "%d of %d lost, e.g. %r" % (len(lost), sum(len(w.acked) for w in writers), lost[:3]))
            subprocess.run(["fusermount3", "-u", mnt], capture_output=True, timeout=30)
        fuse.kill(signal.SIGTERM)
        for s in stores:
            s.kill()
        pd.kill(signal.SIGTERM)
    print("recovery figures:")
    for f in figures:
        print("  " + f)
    passed = sum(1 for r in results if r)
    failed = len(results) - passed
    if failed == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("logs kept in " + tmp)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
