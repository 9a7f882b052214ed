#!/usr/bin/python3
# bench_etcd.py — `make bench`: our write and read path beside etcd's, in one run on this machine.
#
# Starts a 3-member etcd (Debian's etcd-server, installed by `make bench-deps`) and our cluster (a
# scheduler and 3 stores), both on loopback with their data in one temporary directory, and drives
# each with the same load generator (build/tests/bench/kvload): 100-byte values over 1,000 keys,
# 1, 16, 128 and 512 requests in flight, against each system's leader. Writes are our RawPut vs
# etcd's KV/Put; reads our RawGet vs etcd's default (linearizable) KV/Range. For each it prints
# requests/s, p50 and p99, our/etcd ratio, and CPU-seconds per 1,000 requests summed over every
# process of each system (ours: the three stores and the scheduler; etcd: its three members).
# Then one-key transactions beside RawPut, both through our client library (build/tests/bench/
# txnload), at BENCH_TXN_THREADS (128) in flight: what the transaction protocol costs.
#
# Environment: BINDIR (bin/), BUILD (build/), BENCH_ETCD_SECONDS (5 per point and round),
# BENCH_ETCD_ROUNDS (2: etcd then ours, then ours then etcd), BENCH_ETCD_INFLIGHT
# ("1 16 128 512"), BENCH_TXN_ROUNDS (2). Prints figures; asserts nothing.

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster", "store"))
from checks import free_port, wait_for  # noqa: E402

BINDIR = os.path.join(REPO, os.environ.get("BINDIR", "bin"))
KVLOAD = os.path.join(REPO, os.environ.get("BUILD", "build"), "tests", "bench", "kvload")
TXNLOAD = os.path.join(REPO, os.environ.get("BUILD", "build"), "tests", "bench", "txnload")
TXN_THREADS = int(os.environ.get("BENCH_TXN_THREADS", "128"))
# The three client workloads run in turn this many times; the ratios sum the rounds, so a shift
# of the shared machine's load between workloads weighs on all three.
TXN_ROUNDS = int(os.environ.get("BENCH_TXN_ROUNDS", "2"))
SECONDS = float(os.environ.get("BENCH_ETCD_SECONDS", "5"))
INFLIGHT = [int(x) for x in os.environ.get("BENCH_ETCD_INFLIGHT", "1 16 128 512").split()]
# Each point runs etcd, ours, then ours, etcd, ... this many times (a drift of the shared
# machine's load weighs on both systems alike) and prints the rounds' averages.
ROUNDS = int(os.environ.get("BENCH_ETCD_ROUNDS", "2"))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pids):
    total = 0.0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


class Etcd:
    """Three etcd members on loopback."""

    def __init__(self, tmp):
        self.procs = []
        names = ["e1", "e2", "e3"]
        self.client = {n: free_port() for n in names}
        peer = {n: free_port() for n in names}
        cluster = ",".join("%s=http://127.0.0.1:%d" % (n, peer[n]) for n in names)
        for n in names:
            self.procs.append(subprocess.Popen(
                ["etcd", "--name", n, "--data-dir", os.path.join(tmp, n),
                 "--listen-client-urls", "http://127.0.0.1:%d" % self.client[n],
                 "--advertise-client-urls", "http://127.0.0.1:%d" % self.client[n],
                 "--listen-peer-urls", "http://127.0.0.1:%d" % peer[n],
                 "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer[n],
                 "--initial-cluster", cluster, "--initial-cluster-state", "new",
                 "--logger", "zap", "--log-level", "error"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, n + ".log"), "w")))

    def leader_addr(self):
        """The client address of the member that is leader, or None."""
        endpoints = ",".join("127.0.0.1:%d" % p for p in self.client.values())
        try:
            out = subprocess.run(["etcdctl", "--endpoints", endpoints, "endpoint", "status", "-w",
                                  "json"], capture_output=True, text=True, timeout=5,
                                 env=dict(os.environ, ETCDCTL_API="3")).stdout
            for st in json.loads(out):
                if st["Status"]["leader"] == st["Status"]["header"]["member_id"]:
                    return st["Endpoint"]
        except (subprocess.SubprocessError, ValueError, KeyError):
            pass
        return None


class Ours:
    """A scheduler and three stores on loopback."""

    def __init__(self, tmp):
        self.procs = []
        self.http = free_port()
        pd = self.pd = free_port()
        self.procs.append(subprocess.Popen(
            [os.path.join(BINDIR, "tinyscheduler-server"), "--addr", "127.0.0.1:%d" % pd,
             "--http-addr", "127.0.0.1:%d" % self.http, "--data-dir", os.path.join(tmp, "pd"),
             "--log-level", "warn"], stderr=open(os.path.join(tmp, "pd.log"), "w")))
        # A store exits when the scheduler does not answer yet.
        wait_for(lambda: port_open(pd), 30, 0.05)
        for i in range(3):
            self.procs.append(subprocess.Popen(
                [os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % free_port(),
                 "--data-dir", os.path.join(tmp, "s%d" % i), "--scheduler", "127.0.0.1:%d" % pd,
                 "--status-addr", "127.0.0.1:0", "--log-level", "warn"],
                stderr=open(os.path.join(tmp, "s%d.log" % i), "w")))

    def leader_addr(self):
        """The address of the store leading the only region, once it has 3 peers; self.context
        becomes the region's kvrpcpb.Context for kvload (id:conf_ver:version:peer:store), what a
        client that knows the region sends with each request."""
        base = "http://127.0.0.1:%d/pd/api/v1/" % self.http
        try:
            regions = http_json(base + "regions")["regions"]
            stores = http_json(base + "stores")["stores"]
        except (OSError, ValueError, KeyError):
            return None
        if len(regions) != 1 or len(regions[0]["peers"]) != 3:
            return None
        r = regions[0]
        leader = r.get("leader", {}).get("store_id")
        for s in stores:
            if leader and s["store"]["id"] == leader:
                self.context = "%d:%d:%d:%d:%d" % (r["id"], r["epoch"]["conf_ver"],
                                                   r["epoch"]["version"], r["leader"]["id"],
                                                   leader)
                return s["store"]["address"]
        return None


def run_load(system, op, addr, inflight, pids, extra=()):
    """One point: kvload's figures plus the CPU-seconds the system's processes spent meanwhile."""
    before = cpu_s(pids)
    t0 = time.time()
    out = subprocess.run([KVLOAD, "--system", system, "--op", op, "--addr", addr, "--inflight",
                          str(inflight), "--seconds", str(SECONDS), "--warmup", "1"] + list(extra),
                         capture_output=True, text=True, timeout=SECONDS + 60).stdout
    wall = time.time() - t0
    cpu = cpu_s(pids) - before
    fig = dict(kv.split("=", 1) for kv in out.split()[1:] if "=" in kv)
    ops = int(fig.get("ops", 0))
    rps = float(fig.get("rps", 0))
    # CPU over the whole run (warm-up included) divided by the requests served in that time.
    served = rps * wall if rps else 0
    return {"rps": rps, "p50": float(fig.get("p50_ms", 0)), "p99": float(fig.get("p99_ms", 0)),
            "errors": int(fig.get("errors", 0)), "ops": ops, "cpu": cpu, "served": served}


def combine(points):
    """One figure from a point's rounds: requests/s, p50 and p99 averaged, errors summed, CPU per
    1,000 requests over all of them."""
    n = len(points)
    served = sum(p["served"] for p in points)
    return {"rps": sum(p["rps"] for p in points) / n,
            "p50": sum(p["p50"] for p in points) / n,
            "p99": sum(p["p99"] for p in points) / n,
            "errors": sum(p["errors"] for p in points),
            "cpu_per_1000": sum(p["cpu"] for p in points) / served * 1000 if served else float("nan")}


def run_client_load(mode, pd, threads):
    out = subprocess.run([TXNLOAD, "--pd", "127.0.0.1:%d" % pd, "--mode", mode, "--threads",
                          str(threads), "--seconds", str(SECONDS)],
                         capture_output=True, text=True, timeout=SECONDS + 60).stdout
    fig = dict(kv.split("=", 1) for kv in out.split()[1:] if "=" in kv)
    return {k: float(fig.get(k, 0)) for k in ("rps", "p50_ms", "p99_ms", "errors", "conflicts",
                                              "tso_round_trips", "tso_timestamps")}


def main():
    if not shutil.which("etcd") or not shutil.which("etcdctl"):
        print("bench_etcd: etcd is not installed (make bench-deps installs etcd-server, "
              "etcd-client); skipping the comparison")
        return 0
    tmp = tempfile.mkdtemp(prefix="tinykv-bench-etcd-")
    etcd = ours = None
    keep = False
    try:
        etcd = Etcd(tmp)
        ours = Ours(tmp)
        etcd_leader = wait_for(etcd.leader_addr, 60)
        ours_leader = wait_for(ours.leader_addr, 60)
        if not etcd_leader or not ours_leader:
            print("bench_etcd: a cluster did not form (etcd leader %s, ours %s); logs in %s" %
                  (etcd_leader, ours_leader, tmp))
            keep = True
            return 1
        etcd_pids = [p.pid for p in etcd.procs]
        ours_pids = [p.pid for p in ours.procs]
        print("etcd leader at %s, our region leader at %s; %g s per point and round, %d rounds "
              "(averaged), 100-byte values, 1,000 keys" % (etcd_leader, ours_leader, SECONDS,
                                                          ROUNDS))
        for op, ours_name, etcd_name in (("put", "RawPut", "Put"),
                                         ("get", "RawGet", "Range (linearizable)")):
            print("-- %s vs etcd %s" % (ours_name, etcd_name))
            print("%9s | %9s %8s %8s | %9s %8s %8s | %6s | %13s %13s" %
                  ("in flight", "ours/s", "p50 ms", "p99 ms", "etcd/s", "p50 ms", "p99 ms",
                   "ratio", "ours CPU-s/1k", "etcd CPU-s/1k"))
            for n in INFLIGHT:
                loads = {"etcd": lambda: run_load("etcd", op, etcd_leader, n, etcd_pids),
                         "ours": lambda: run_load("ours", op, ours_leader, n, ours_pids,
                                                  ["--region", ours.context])}
                points = {"etcd": [], "ours": []}
                for r in range(ROUNDS):
                    for system in (("etcd", "ours") if r % 2 == 0 else ("ours", "etcd")):
                        points[system].append(loads[system]())
                e, o = combine(points["etcd"]), combine(points["ours"])
                ratio = o["rps"] / e["rps"] if e["rps"] else float("nan")
                errors = ""
                if o["errors"] or e["errors"]:
                    errors = "  (errors: ours %d, etcd %d)" % (o["errors"], e["errors"])
                per_round = ""
                if ROUNDS > 1:
                    per_round = "  (rounds %s)" % ", ".join(
                        "%.2fx" % (a["rps"] / b["rps"] if b["rps"] else float("nan"))
                        for a, b in zip(points["ours"], points["etcd"]))
                print("%9d | %9.0f %8.2f %8.2f | %9.0f %8.2f %8.2f | %5.2fx | %13.3f %13.3f%s%s" %
                      (n, o["rps"], o["p50"], o["p99"], e["rps"], e["p50"], e["p99"], ratio,
                       o["cpu_per_1000"], e["cpu_per_1000"], errors, per_round), flush=True)
        print("-- one-key transactions (begin, put, commit) vs RawPut, both through the "
              "client library, %d threads" % TXN_THREADS)
        rounds = {"raw": [], "txn": [], "txn2pc": []}
        for _ in range(TXN_ROUNDS):
            for mode in rounds:
                rounds[mode].append(run_client_load(mode, ours.pd, TXN_THREADS))
        for name, mode in (("RawPut", "raw"), ("one-phase", "txn"), ("two-phase", "txn2pc")):
            for f in rounds[mode]:
                batch = ""
                if f["tso_round_trips"]:
                    batch = "  timestamps per TSO round trip %.1f" % (f["tso_timestamps"] /
                                                                    f["tso_round_trips"])
                print("%12s: %7.0f/s  p50 %7.2f ms  p99 %7.2f ms  errors %d  write conflicts %d%s" %
                      (name, f["rps"], f["p50_ms"], f["p99_ms"], f["errors"], f["conflicts"], batch))
        raw_total = sum(f["rps"] for f in rounds["raw"])
        for name, mode in (("one-phase", "txn"), ("two-phase", "txn2pc")):
            per_round = ", ".join("%.2fx" % (t["rps"] / r["rps"] if r["rps"] else float("nan"))
                                  for t, r in zip(rounds[mode], rounds["raw"]))
            total = sum(f["rps"] for f in rounds[mode])
            print("%s transactions/RawPut: %.2fx (rounds %s)" %
                  (name, total / raw_total if raw_total else float("nan"), per_round))
        return 0
    finally:
        for sysm in (etcd, ours):
            for p in (sysm.procs if sysm else []):
                p.kill()
                p.wait()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
