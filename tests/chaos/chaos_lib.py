# chaos_lib.py — the chaos suite's cluster (a scheduler and N stores on loopback, each store under
# a uid of its own) and its faults (signals, iptables rules per port and per uid).
#
# Owns: the processes it starts, their data under one temporary directory, and
# the iptables rules it adds (each rule carries the comment "tinykv-chaos-<run>"
# and is removed by deleting exactly that rule spec; nothing else is touched).
# Callers: tests/chaos/run.py (and through it tests/cluster/fs/test_chaos_short.py).
# Never: signals a process it did not start, or leaves a rule behind (heal() in
# a finally, and an atexit hook).
#
# Why a uid per store: every process talks over 127.0.0.1, so a port alone does
# not say who sends a packet. Each store runs as its own uid, so a rule
# "OUTPUT -m owner --uid-owner U(a) -p tcp --dport PORT(b) -j DROP" cuts
# exactly a's packets towards b (its requests to b, and its acks on b's
# connections to a are cut by the mirror rule). Clients (this process, the
# drivers, the mounts) run as root and are never cut off.

import atexit
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BINDIR = os.path.join(REPO, os.environ.get("BINDIR", "bin"))
BUILD = os.path.join(REPO, os.environ.get("BUILD", "build"))

pb = {}
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def generate_protos(outdir):
    """protoc's Python messages for proto/*.proto, importable as pb['kv'], pb['err'], pb['sched']."""
    if pb:
        return
    protos = sorted("proto/" + f for f in os.listdir(os.path.join(REPO, "proto")) if f.endswith(".proto"))
    subprocess.run(["protoc", "--python_out=" + outdir, "--proto_path=proto"] + protos, cwd=REPO, check=True)
    sys.path.insert(0, outdir)
    import kvrpcpb_pb2
    import schedulerpb_pb2

    pb["kv"] = kvrpcpb_pb2
    pb["sched"] = schedulerpb_pb2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout_s, step=0.1):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if cond():
                return True
        except Exception:  # noqa: BLE001 - a condition that raises is not met yet
            pass
        time.sleep(step)
    return False


class Proc:
    """One server process; `uid` (if set) is the uid it runs as."""

    def __init__(self, name, args, log_path, uid=None):
        self.name = name
        self.args = args
        self.log_path = log_path
        self.uid = uid
        self.proc = None
        self.paused = False
        self.env = None  # extra environment (a preload library and its settings)
        self.prefix = []  # a wrapper command (fiu-run)

    def start(self):
        def drop():
            if self.uid is not None:
                os.setgid(self.uid)
                os.setuid(self.uid)

        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(self.prefix + self.args, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "ab"), preexec_fn=drop, env=env)
        self.paused = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=15)
        self.paused = False

    def terminate(self):
        if self.alive():
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.paused = False

    def pause(self):
        if self.alive() and not self.paused:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.alive() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False


class Cluster:
    def __init__(self, workdir, n_stores=3, uid_base=None, log_level="warn", preload=None):
        self.workdir = workdir
        self.n = n_stores
        self.pd_port = free_port()
        self.http_port = free_port()
        self.pd_addr = "127.0.0.1:%d" % self.pd_port
        self.pd_http = "127.0.0.1:%d" % self.http_port
        if uid_base is None:
            uid_base = 61000 + (os.getpid() % 500) * 10
        self.uid_base = uid_base
        self.pd = Proc("pd", [os.path.join(BINDIR, "tinyscheduler-server"), "--addr", self.pd_addr,
                              "--http-addr", self.pd_http, "--data-dir", os.path.join(workdir, "pd"),
                              "--log-level", log_level, "--schedule-interval-ms", "500"],
                       os.path.join(workdir, "pd.log"), uid=uid_base + 9)
        os.makedirs(os.path.join(workdir, "pd"), exist_ok=True)
        os.chown(os.path.join(workdir, "pd"), uid_base + 9, uid_base + 9)
        self.ports = [free_port() for _ in range(n_stores)]
        self.stores = []
        for i, p in enumerate(self.ports):
            d = os.path.join(workdir, "store%d" % i)
            os.makedirs(d, exist_ok=True)
            os.chown(d, uid_base + i, uid_base + i)
            self.stores.append(Proc("store%d" % i, [
                os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % p, "--data-dir", d,
                "--scheduler", self.pd_addr, "--status-addr", "127.0.0.1:0", "--log-level", log_level],
                os.path.join(workdir, "store%d.log" % i), uid=uid_base + i))
        os.chmod(workdir, 0o755)
        for p in [self.pd] + self.stores:
            if preload == "faketime":
                self._faketime(p)
            elif preload == "fiu":
                self._fiu(p)

    def _private_dir(self, p):
        d = os.path.join(self.workdir, "ctl-" + p.name)
        os.makedirs(d, exist_ok=True)
        os.chown(d, p.uid, p.uid)
        return d

    def _faketime(self, p):
        """The process's wall clock (not its monotonic clock) follows p.clock_file: "+0" normally,
        an offset such as "-30" (seconds) while skewed; re-read every second."""
        p.clock_file = os.path.join(self._private_dir(p), "faketime")
        with open(p.clock_file, "w") as f:
            f.write("+0\n")
        os.chmod(p.clock_file, 0o644)
        p.env = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME_TIMESTAMP_FILE": p.clock_file,
                 "FAKETIME_CACHE_DURATION": "1", "DONT_FAKE_MONOTONIC": "1"}

    def _fiu(self, p):
        """libfiu's POSIX wrappers, with failure points switched by fiu-ctrl over FIFOs."""
        p.fiu_prefix = os.path.join(self._private_dir(p), "fiu")
        p.prefix = ["fiu-run", "-x", "-f", p.fiu_prefix]

    def addr(self, i):
        return "127.0.0.1:%d" % self.ports[i]

    def start(self):
        self.pd.start()
        for s in self.stores:
            s.start()
            time.sleep(0.3)  # the first store bootstraps; the others join

    def http(self, path):
        with urllib.request.urlopen("http://%s/pd/api/v1/%s" % (self.pd_http, path), timeout=2) as r:
            return json.loads(r.read())

    def regions(self):
        return self.http("regions")["regions"]

    def store_index_of_id(self, store_id):
        for s in self.http("stores")["stores"]:
            if s["store"]["id"] == store_id:
                a = s["store"]["address"]
                for i in range(self.n):
                    if a == self.addr(i):
                        return i
        return None

    def wait_replicated(self, timeout_s, replicas=3):
        def ok():
            rs = self.regions()
            return bool(rs) and all(len(r["peers"]) == min(replicas, self.n) and r.get("leader", {}).get("id")
                                    for r in rs)

        return wait_for(ok, timeout_s, 0.2)

    def leader_index(self):
        """The store index of the first region's leader as the scheduler last heard, or None."""
        try:
            rs = self.regions()
            if rs and rs[0].get("leader", {}).get("store_id"):
                return self.store_index_of_id(rs[0]["leader"]["store_id"])
        except Exception:  # noqa: BLE001 - the scheduler may be down: no answer
            pass
        return None

    def stop_all(self):
        for s in self.stores:
            s.kill()
        self.pd.terminate()

    def logs_tail(self, lines=15):
        out = []
        for p in [self.pd] + self.stores:
            if os.path.exists(p.log_path):
                with open(p.log_path, errors="replace") as f:
                    out.append("---- %s (tail)\n%s" % (p.name, "".join(f.readlines()[-lines:])))
        return "\n".join(out)


class Firewall:
    """iptables rules this run added, each removed by its exact spec."""

    def __init__(self, run_tag):
        self.comment = "tinykv-chaos-%s" % run_tag
        self.rules = []
        atexit.register(self.heal)

    def add(self, spec):
        spec = list(spec) + ["-m", "comment", "--comment", self.comment, "-j", "DROP"]
        subprocess.run(["iptables", "-w", "-A", "OUTPUT"] + spec, check=True, capture_output=True, timeout=30)
        self.rules.append(spec)

    @staticmethod
    def sweep_dead_runs():
        """Deletes the rules of earlier runs that died before healing (SIGKILL by a timeout):
        their tag names their pid, and only rules whose pid is gone are touched."""
        out = subprocess.run(["iptables", "-w", "-S", "OUTPUT"], capture_output=True, timeout=30).stdout.decode()
        for line in out.splitlines():
            m = re.search(r'--comment "?tinykv-chaos-(\d+)-\d+"?', line)
            if not m or not line.startswith("-A OUTPUT "):
                continue
            try:
                os.kill(int(m.group(1)), 0)
                continue  # that run is alive: its rules are its own
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            subprocess.run(["iptables", "-w", "-D"] + shlex.split(line)[1:], capture_output=True, timeout=30)

    def heal(self):
        while self.rules:
            spec = self.rules.pop()
            subprocess.run(["iptables", "-w", "-D", "OUTPUT"] + spec, capture_output=True, timeout=30)

    def cut(self, uid_a, port_b, uid_b, port_a):
        """Both directions between a (uid, port) and b (uid, port)."""
        self.add(["-p", "tcp", "-m", "owner", "--uid-owner", str(uid_a), "--dport", str(port_b)])
        self.add(["-p", "tcp", "-m", "owner", "--uid-owner", str(uid_b), "--dport", str(port_a)])

    def lossy(self, uid, probability):
        self.add(["-p", "tcp", "-m", "owner", "--uid-owner", str(uid), "-m", "statistic", "--mode", "random",
                  "--probability", "%.2f" % probability])


# ---------------------------------------------------------------------------------- faults

FAULTS = [
    "kill-leader", "kill-random", "kill-pd",
    "pause-leader", "pause-random", "pause-pd",
    "partition-leader", "partition-random", "partition-majority", "partition-ring",
    "loss",
    "skew-pd", "skew-store",  # wall clock stepped by libfaketime (needs preload "faketime")
    "fsync-fail-follower",  # fdatasync/fsync fail on a follower (libfiu, preload "fiu")
]

PRELOAD_OF = {"skew-pd": "faketime", "skew-store": "faketime", "fsync-fail-follower": "fiu"}


class Nemesis:
    """Injects one kind of fault over and over, with seeded choices; records what it did and when."""

    def __init__(self, cluster, kind, rng, firewall):
        assert kind in FAULTS or kind == "none", kind
        self.c = cluster
        self.kind = kind
        self.rng = rng
        self.fw = firewall
        self.events = []  # [start, end, description]
        self._undo = None
        self.fsync_failed = []  # processes whose syncs were made to fail
        self.kept_running = []  # ... and that still ran when the fault ended (not fail-stop)

    def _set_clock(self, p, offset):
        with open(p.clock_file + ".tmp", "w") as f:
            f.write(offset + "\n")
        os.chmod(p.clock_file + ".tmp", 0o644)
        os.rename(p.clock_file + ".tmp", p.clock_file)

    def _fiu(self, p, what):
        for point in ("posix/io/sync/fdatasync", "posix/io/sync/fsync"):
            if not p.alive():
                return  # it stopped at the first failing sync
            try:
                subprocess.run(["fiu-ctrl", "-f", p.fiu_prefix, "-c", "%s name=%s" % (what, point),
                                str(p.proc.pid)], capture_output=True, timeout=3)
            except subprocess.TimeoutExpired:
                pass  # no one reads the FIFO any more: the process is gone

    def _target(self, which):
        if which == "leader":
            i = self.c.leader_index()
            if i is not None:
                return i
        return self.rng.randrange(self.c.n)

    def _uid(self, i):
        return self.c.stores[i].uid

    def _partition(self, groups):
        """Cuts every pair of stores in different groups; only the largest group keeps the
        scheduler (the others' packets to its port are dropped too)."""
        largest = max(groups, key=len)
        for gi, ga in enumerate(groups):
            for gb in groups[gi + 1:]:
                for a in ga:
                    for b in gb:
                        self.fw.cut(self._uid(a), self.c.ports[b], self._uid(b), self.c.ports[a])
            if ga is not largest:
                for a in ga:
                    self.fw.add(["-p", "tcp", "-m", "owner", "--uid-owner", str(self._uid(a)),
                                 "--dport", str(self.c.pd_port)])

    def _ring(self):
        """Each store talks only to its two neighbours in a shuffled ring (needs 5+ stores to matter)."""
        order = list(range(self.c.n))
        self.rng.shuffle(order)
        pos = {s: k for k, s in enumerate(order)}
        for a in range(self.c.n):
            for b in range(a + 1, self.c.n):
                d = abs(pos[a] - pos[b])
                if min(d, self.c.n - d) > 1:
                    self.fw.cut(self._uid(a), self.c.ports[b], self._uid(b), self.c.ports[a])
        return "ring %s" % order

    def start_fault(self):
        k = self.kind
        desc = k
        if k == "none":
            self._undo = lambda: None
        elif k in ("kill-leader", "kill-random"):
            i = self._target(k.split("-")[1])
            self.c.stores[i].kill()
            self._undo = self.c.stores[i].start
            desc = "SIGKILL store%d" % i
        elif k == "kill-pd":
            self.c.pd.kill()
            self._undo = self.c.pd.start
            desc = "SIGKILL scheduler"
        elif k in ("pause-leader", "pause-random"):
            i = self._target(k.split("-")[1])
            self.c.stores[i].pause()
            self._undo = self.c.stores[i].resume
            desc = "SIGSTOP store%d" % i
        elif k == "pause-pd":
            self.c.pd.pause()
            self._undo = self.c.pd.resume
            desc = "SIGSTOP scheduler"
        elif k in ("partition-leader", "partition-random"):
            i = self._target(k.split("-")[1])
            self._partition([[i], [s for s in range(self.c.n) if s != i]])
            self._undo = self.fw.heal
            desc = "isolate store%d" % i
        elif k == "partition-majority":
            order = list(range(self.c.n))
            self.rng.shuffle(order)
            m = self.c.n // 2
            self._partition([order[:m], order[m:]])
            self._undo = self.fw.heal
            desc = "split %s | %s" % (sorted(order[:m]), sorted(order[m:]))
        elif k == "partition-ring":
            desc = self._ring()
            self._undo = self.fw.heal
        elif k in ("skew-pd", "skew-store"):
            p = self.c.pd if k == "skew-pd" else self.c.stores[self.rng.randrange(self.c.n)]
            off = self.rng.choice([-1, 1]) * self.rng.randrange(5, 60)
            self._set_clock(p, "%+d" % off)
            self._undo = lambda: self._set_clock(p, "+0")
            desc = "%s clock %+d s" % (p.name, off)
            if k == "skew-pd" and self.rng.random() < 0.5:
                # Restarted under the wrong clock, it must recover its timestamps from disk.
                p.kill()
                p.start()
                desc += ", restarted"
        elif k == "fsync-fail-follower":
            lead = self.c.leader_index()
            i = self.rng.choice([s for s in range(self.c.n) if s != lead])
            p = self.c.stores[i]
            self._fiu(p, "enable")
            self.fsync_failed.append(p)

            def undo():
                if p.alive():
                    self._fiu(p, "disable")
                    self.kept_running.append(p.name)
                else:
                    p.start()
            self._undo = undo
            desc = "fdatasync/fsync fail on store%d" % i
        elif k == "loss":
            p = self.rng.choice([0.2, 0.3, 0.4])
            for i in range(self.c.n):
                self.fw.lossy(self._uid(i), p)
            self._undo = self.fw.heal
            desc = "drop %d%% of every store's packets" % int(p * 100)
        self.events.append([time.time(), None, desc])

    def stop_fault(self):
        if self._undo:
            self._undo()
            self._undo = None
            self.events[-1][1] = time.time()

    def heal_all(self):
        """Everything back: rules removed, paused processes resumed, dead ones restarted."""
        self.stop_fault()
        self.fw.heal()
        for p in [self.c.pd] + self.c.stores:
            p.resume()
            if not p.alive():
                p.start()

    def run(self, stop_at, stop_flag, fault_s=(1.5, 3.5), quiet_s=(2.0, 4.0)):
        """Alternates fault and quiet periods until stop_at (wall clock) or stop_flag[0]."""
        try:
            while time.time() < stop_at and not stop_flag[0]:
                self.start_fault()
                t_end = min(stop_at, time.time() + self.rng.uniform(*fault_s))
                while time.time() < t_end and not stop_flag[0]:
                    time.sleep(0.05)
                self.stop_fault()
                t_end = min(stop_at, time.time() + self.rng.uniform(*quiet_s))
                while time.time() < t_end and not stop_flag[0]:
                    time.sleep(0.05)
        finally:
            self.heal_all()


def rng_for(seed, name):
    return random.Random("%s/%s" % (seed, name))
