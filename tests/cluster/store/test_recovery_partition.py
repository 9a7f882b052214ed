#!/usr/bin/python3
# Partitions between three real tinykv-server processes (iptables DROP rules), then heals: how long until the region has a leader again.
#
# Each store runs as its own uid, so a rule "packets of uid U to port P" cuts
# exactly one direction between two stores and leaves the test's own probes
# (root) and the scheduler alone. Such packets are marked in mangle/OUTPUT
# and dropped in INPUT, so they are lost the way a network loses them. Every
# rule added is removed again, one by one (never a flush: other tests may
# have rules of their own); rules of an earlier run that was killed (tagged
# with its pid, now gone) are removed at start.
#
# Who follows whom is read from the stores themselves: a RawGet answered by
# a store is its leader's (a linearizable read: it needs a quorum), and a
# follower answers NotLeader naming the leader it follows, or none while it
# campaigns. "Every member follows" means one store answers and the others
# name it.
#
# Nothing asserts a time: each condition is waited for within a generous
# bound (BOUND_S) and the time it took is printed, also in election timeouts
# (10 ticks of 100 ms: 1 s, randomized up to 2 s).
#
# Needs root and iptables with the owner match; fails (never skips) without.
# Environment: BINDIR (default bin/); RECOVERY_SCENARIOS=a,b runs only those;
# RECOVERY_ROUNDS=N repeats them N times (default 1) and summarizes;
# RECOVERY_HOLD_S=S holds each partition S seconds (default 4);
# RECOVERY_KEEP_LOGS=1 keeps the stores' logs (info level) after a pass. Prints PASS/FAIL per check and
# "N passed, N failed"; exits 1 on any failure.

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

import grpc

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BINDIR = os.path.join(REPO, os.environ.get("BINDIR", "bin"))
BOUND_S = 30.0
ELECTION_TIMEOUT_S = 1.0  # --raft-tick-ms 100 x 10 ticks (the randomized timeout is 1-2 s)
HOLD_S = float(os.environ.get("RECOVERY_HOLD_S", "4"))  # how long a partition lasts: several election timeouts
PROBE_TIMEOUT_S = 0.4

kvrpcpb = None
results = []
rules = []  # iptables rule specs added and not yet removed
figures = {}  # name -> seconds, one per round


def check(name, ok, detail=""):
    results.append(ok)
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (" -- " + detail) if detail else ""), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate_protos(outdir):
    global kvrpcpb
    protos = sorted("proto/" + f for f in os.listdir(os.path.join(REPO, "proto")) if f.endswith(".proto"))
    subprocess.run(["protoc", "--python_out=" + outdir, "--proto_path=proto"] + protos, cwd=REPO, check=True)
    sys.path.insert(0, outdir)
    import kvrpcpb_pb2

    kvrpcpb = kvrpcpb_pb2


MARK = "0x%x" % (0x7a000000 | (os.getpid() & 0xffff))
COMMENT = "tinykv-recovery-%d" % os.getpid()


def iptables(table, action, chain, spec):
    subprocess.run(["iptables", "-t", table, action, chain] + spec, check=True, capture_output=True, timeout=10)


def add_rule(table, chain, spec):
    iptables(table, "-A", chain, spec)
    rules.append((table, chain, spec))


def drop(from_uid, to_port):
    """Loses every TCP packet a process of from_uid sends to to_port.

    The packet is marked on its way out (only there is its owner known) and
    dropped on its way in, so the sender's TCP sees a lost packet, as on a
    real network; a drop in OUTPUT would instead fail the send locally, and
    Linux then retries every 500 ms without backing off."""
    if not rules:
        add_rule("filter", "INPUT", ["-m", "mark", "--mark", MARK, "-m", "comment", "--comment", COMMENT,
                                     "-j", "DROP"])
    add_rule("mangle", "OUTPUT", ["-p", "tcp", "-m", "owner", "--uid-owner", str(from_uid), "-m", "tcp",
                                  "--dport", str(to_port), "-m", "comment", "--comment", COMMENT,
                                  "-j", "MARK", "--set-mark", MARK])


def remove_stale_rules():
    """Deletes rules an earlier run left behind when it was killed (its pid is gone)."""
    for table, chain in (("mangle", "OUTPUT"), ("filter", "INPUT")):
        out = subprocess.run(["iptables", "-t", table, "-S", chain], capture_output=True, text=True, timeout=10)
        for line in out.stdout.splitlines():
            words = line.split()
            tag = next((w.strip('"') for w in words if w.strip('"').startswith("tinykv-recovery-")), None)
            if not tag or words[:2] != ["-A", chain]:
                continue
            pid = tag[len("tinykv-recovery-"):]
            if pid.isdigit() and not os.path.exists("/proc/" + pid):
                subprocess.run(["iptables", "-t", table, "-D", chain] + [w.strip('"') for w in words[2:]],
                               capture_output=True, timeout=10)


def heal():
    while rules:
        table, chain, spec = rules.pop()
        iptables(table, "-D", chain, spec)


class Proc:
    def __init__(self, args, log_path, uid=None):
        self.args = args
        self.log_path = log_path
        self.uid = uid
        self.proc = None

    def start(self):
        uid = self.uid

        def drop_privileges():
            if uid is not None:
                os.setgid(uid)
                os.setuid(uid)

        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "ab"),
                                     preexec_fn=drop_privileges)

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    def __init__(self, workdir):
        self.workdir = workdir
        self.pd_port = free_port()
        self.http_port = free_port()
        self.pd = Proc([os.path.join(BINDIR, "tinyscheduler-server"), "--addr", "127.0.0.1:%d" % self.pd_port,
                        "--http-addr", "127.0.0.1:%d" % self.http_port, "--data-dir", os.path.join(workdir, "pd"),
                        "--log-level", "warn"], os.path.join(workdir, "pd.log"))
        self.ports = [free_port() for _ in range(3)]
        # uids no other test is likely to use at the same time
        base = 40000 + (os.getpid() % 5000) * 4
        self.uids = [base + i for i in range(3)]
        self.stores = []
        for i, p in enumerate(self.ports):
            d = os.path.join(workdir, "store%d" % i)
            os.mkdir(d)
            os.chown(d, self.uids[i], self.uids[i])
            self.stores.append(Proc([os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % p,
                                     "--data-dir", d, "--scheduler", "127.0.0.1:%d" % self.pd_port,
                                     "--status-addr", "127.0.0.1:0", "--log-level", "info"],
                                    os.path.join(workdir, "store%d.log" % i), self.uids[i]))
        self.channels = [grpc.insecure_channel("127.0.0.1:%d" % p) for p in self.ports]
        self.store_ids = [None] * 3

    def http(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d/pd/api/v1/%s" % (self.http_port, path), timeout=3) as r:
            return json.loads(r.read())

    def learn_store_ids(self):
        for s in self.http("stores")["stores"]:
            addr = s["store"]["address"]
            for i, p in enumerate(self.ports):
                if addr == "127.0.0.1:%d" % p:
                    self.store_ids[i] = s["store"]["id"]
        return all(self.store_ids)

    def wait_replicated(self, timeout_s):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            try:
                regions = self.http("regions")["regions"]
                if regions and len(regions[0]["peers"]) == 3 and self.learn_store_ids():
                    return True
            except Exception:
                pass
            time.sleep(0.2)
        return False

    def probe(self, i):
        """'leader', ('follower', leader_store_id or 0), or None (no answer)."""
        stub = self.channels[i].unary_unary("/tinykvpb.TinyKv/RawGet",
                                            request_serializer=kvrpcpb.RawGetRequest.SerializeToString,
                                            response_deserializer=kvrpcpb.RawGetResponse.FromString)
        try:
            resp = stub(kvrpcpb.RawGetRequest(key=b"probe"), timeout=PROBE_TIMEOUT_S)
        except grpc.RpcError:
            return None
        if not resp.HasField("region_error"):
            return "leader"
        nl = resp.region_error.not_leader
        if resp.region_error.HasField("not_leader"):
            return ("follower", nl.leader.store_id if nl.HasField("leader") else 0)
        return None

    def followed_leader(self, members):
        """The index of a leader every one of `members` follows, else None."""
        states = {i: self.probe(i) for i in members}
        leaders = [i for i, s in states.items() if s == "leader"]
        if len(leaders) != 1:
            return None
        l = leaders[0]
        for i, s in states.items():
            if i != l and s != ("follower", self.store_ids[l]):
                return None
        return l

    def wait_followed(self, members, timeout_s=BOUND_S, exclude_leader=None):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            l = self.followed_leader(members)
            if l is not None and l != exclude_leader:
                return l
            time.sleep(0.02)
        return None

    def stop_all(self):
        for s in self.stores:
            s.kill()
        self.pd.kill(signal.SIGTERM)


def isolate(c, i, inbound=True, outbound=True):
    """Cuts store i off from the two other stores (inbound: what they send it)."""
    for j in range(3):
        if j == i:
            continue
        if inbound:
            drop(c.uids[j], c.ports[i])
        if outbound:
            drop(c.uids[i], c.ports[j])


def report(name, seconds):
    figures.setdefault(name, []).append(seconds)
    print("%s: %.2f s (%.1f election timeouts) at %s" % (name, seconds, seconds / ELECTION_TIMEOUT_S,
                                                          time.strftime("%H:%M:%S", time.gmtime())), flush=True)


def heal_and_measure(c, name):
    t0 = time.time()
    heal()
    l = c.wait_followed([0, 1, 2])
    if l is not None:
        report(name, time.time() - t0)
    check(name + "_within_%ds" % BOUND_S, l is not None)
    return l


def scenario_follower(c, name, inbound, outbound):
    """A follower cut off for HOLD_S, then healed: every member follows one leader again."""
    l = c.wait_followed([0, 1, 2])
    check(name + "_starts_with_a_followed_leader", l is not None)
    if l is None:
        return
    f = (l + 1) % 3
    isolate(c, f, inbound, outbound)
    time.sleep(HOLD_S)
    heal_and_measure(c, name + "_heal_to_all_following")


def scenario_leader(c, name, inbound, outbound):
    """The leader cut off: the other two elect a leader they both follow; after the heal all three follow one."""
    l = c.wait_followed([0, 1, 2])
    check(name + "_starts_with_a_followed_leader", l is not None)
    if l is None:
        return
    majority = [i for i in range(3) if i != l]
    t0 = time.time()
    isolate(c, l, inbound, outbound)
    nl = c.wait_followed(majority, exclude_leader=l)
    if nl is not None:
        report(name + "_new_leader_in_majority", time.time() - t0)
    check(name + "_new_leader_in_majority_within_%ds" % BOUND_S, nl is not None)
    elapsed = time.time() - t0
    if elapsed < HOLD_S:
        time.sleep(HOLD_S - elapsed)
    heal_and_measure(c, name + "_heal_to_all_following")


def main():
    if os.geteuid() != 0 or not shutil.which("iptables"):
        print("FAIL needs root and iptables (make deps installs iptables)")
        print("0 passed, 1 failed")
        return 1
    remove_stale_rules()
    tmp = tempfile.mkdtemp(prefix="tinykv-partition-")
    os.chmod(tmp, 0o755)
    gen = os.path.join(tmp, "gen")
    os.mkdir(gen)
    generate_protos(gen)
    c = Cluster(tmp)

    def on_signal(sig, frame):
        heal()
        c.stop_all()
        sys.exit(1)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        c.pd.start()
        for s in c.stores:
            s.start()
            time.sleep(0.3)  # the first store bootstraps; the others join
        check("three_replicas_within_30s", c.wait_replicated(30))
        only = os.environ.get("RECOVERY_SCENARIOS", "").split(",")
        rounds = int(os.environ.get("RECOVERY_ROUNDS", "1"))
        for name, fn, inbound, outbound in rounds * [
            ("follower_inbound_cut", scenario_follower, True, False),
            ("follower_isolated", scenario_follower, True, True),
            ("leader_isolated", scenario_leader, True, True),
            ("leader_inbound_cut", scenario_leader, True, False),
            ("leader_outbound_cut", scenario_leader, False, True),
        ]:
            if only == [""] or name in only:
                print("--- %s (%.3f)" % (name, time.time()), flush=True)
                fn(c, name, inbound, outbound)
    finally:
        heal()
        c.stop_all()
        for ch in c.channels:
            ch.close()
    print("recovery figures (seconds; min / median / max over %d rounds; election timeout %.0f s):"
          % (int(os.environ.get("RECOVERY_ROUNDS", "1")), ELECTION_TIMEOUT_S))
    for name, v in figures.items():
        v = sorted(v)
        print("  %-45s %.2f / %.2f / %.2f" % (name, v[0], v[len(v) // 2], v[-1]))
    passed = sum(1 for r in results if r)
    failed = len(results) - passed
    if failed == 0 and not os.environ.get("RECOVERY_KEEP_LOGS"):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("logs kept in " + tmp)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
