#!/usr/bin/python3
# run.py — the chaos suite: runs workloads against a real cluster while one kind of fault is
# injected over and over, then heals everything, checks every history and that all replicas
# hold the same data, and prints per-run figures.
#
# Usage: run.py [--short | --matrix | --run NAME] [--seed S] [--duration S] [--list]
#   --short   the version inside `make test` (four runs, about 4 minutes)
#   --matrix  every fault of tests/chaos/chaos_lib.py FAULTS (`make chaos`)
#   --run     one named run of either list; with --seed, the exact same choices
# Environment: BINDIR, BUILD (as the Makefile sets them). Needs root (uids per store,
# iptables) and /dev/fuse. Prints PASS/FAIL per run and "N passed, N failed"; exit 1 on any
# failure, with the history excerpt and the re-run command of the failing seed.

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos_lib  # noqa: E402
import checkers  # noqa: E402
import workloads  # noqa: E402
from chaos_lib import pb  # noqa: E402


# name -> (fault, stores). Every run drives all four workloads at once.
SHORT = [
    ("kill-leader", 3),
    ("pause-leader", 3),
    ("partition-leader", 3),
    ("loss", 3),
]
MATRIX = [(f, 3) for f in chaos_lib.FAULTS if f not in ("partition-majority", "partition-ring")] + [
    ("partition-majority", 5),
    ("partition-ring", 5),
]

# Seeds that once failed, kept as named regression cases (run by --matrix and by name):
# name -> (fault, stores, seed, duration, what it found).
REGRESSIONS = {
    "regression-notleader-applied": ("pause-leader", 3, 6, 30,
                                     "issue 14: a write answered NotLeader was applied by the next leader"),
}

BANK_ACCOUNTS = 5
BANK_TOTAL = 100 * BANK_ACCOUNTS


def run_name(fault, stores):
    return "%s-%dstores" % (fault, stores)


def replicas_agree(c, log):
    """Runs `tinykv-ctl region check` on every region: where the check's ComputeHash entry applies,
    every replica hashes its region's data in every CF (all MVCC versions, locks and values), and
    the hashes must be equal. A check that gets no verdict from some replica in time (one that
    caught up by a snapshot past the check, a leader change) is started again, within a bound."""
    ctl = [os.path.join(chaos_lib.BINDIR, "tinykv-ctl"), "--pd-http", c.pd_http, "--timeout", "15000", "--json"]
    regions = c.regions()
    if not regions:
        return False, "the scheduler knows no region"
    for r in regions:
        deadline = time.time() + 60
        while True:
            res = subprocess.run(ctl + ["region", "check", str(r["id"])], capture_output=True, text=True, timeout=60)
            try:
                j = json.loads(res.stdout)
            except ValueError:
                j = {}
            reps = j.get("replicas", [])
            if res.returncode == 0 and j.get("result") == "consistent":
                log("  region %d consistent at index %d: hash %s on stores %s" % (
                    r["id"], j["index"], reps[0]["hash"] if reps else "?",
                    ",".join(str(x["store_id"]) for x in reps)))
                break
            if res.returncode == 1 and j.get("result") == "MISMATCH":
                return False, "region %d MISMATCH at index %d: %s" % (r["id"], j["index"], ", ".join(
                    "store %d %s %s" % (x["store_id"], x["hash"], x["state"]) for x in reps))
            if time.time() > deadline:
                return False, "region %d: no verdict from every replica: %s" % (
                    r["id"], (res.stdout + res.stderr).strip()[-300:])
            time.sleep(1)
    return True, "%d region(s), every replica with the same hash" % len(regions)


def stalls(events, oks, end):
    """For each fault: the longest time without any acknowledged operation from the fault's start
    until the next fault starts (or the run ends)."""
    out = []
    oks = sorted(oks)
    for k, (t0, t1, desc) in enumerate(events):
        until = events[k + 1][0] if k + 1 < len(events) else end
        last, worst = t0, 0.0
        for t in oks:
            if t < t0:
                continue
            if t > until:
                break
            worst = max(worst, t - last)
            last = t
        worst = max(worst, until - last)
        out.append((desc, (t1 or until) - t0, worst))
    return out


def one_run(fault, n_stores, seed, duration, log):
    """Returns (ok, figures line)."""
    name = run_name(fault, n_stores)
    tmp = tempfile.mkdtemp(prefix="tinykv-chaos-")
    gen = os.path.join(tmp, "gen")
    os.mkdir(gen)
    chaos_lib.generate_protos(gen)
    c = chaos_lib.Cluster(tmp, n_stores, preload=chaos_lib.PRELOAD_OF.get(fault))
    fw = chaos_lib.Firewall("%d-%d" % (os.getpid(), int(time.time())))
    nem = chaos_lib.Nemesis(c, fault, chaos_lib.rng_for(seed, name + "/nemesis"), fw)
    problems = []
    figures = []
    fs = None
    try:
        c.start()
        if not c.wait_replicated(60):
            return False, "cluster never had three replicas and a leader"
        reg = workloads.Register(c, chaos_lib.rng_for(seed, name + "/register"))
        bank = workloads.Driver(c, chaos_lib.rng_for(seed, name + "/bank"), "bank", accounts=BANK_ACCOUNTS)
        mono = workloads.Driver(c, chaos_lib.rng_for(seed, name + "/monotonic"), "monotonic")
        lf = workloads.Driver(c, chaos_lib.rng_for(seed, name + "/longfork"), "longfork", threads=3)
        fs = workloads.FileSet(c, chaos_lib.rng_for(seed, name + "/set"), tmp)
        if not fs.mount():
            return False, "the mount never came up"
        tso = workloads.TsoWatch(c)
        wls = [reg, bank, mono, lf, fs, tso]
        stop_at = time.time() + duration + 2
        for w in wls:
            w.start(stop_at)
        time.sleep(2)  # a little history before the first fault
        stop_flag = [False]
        nem.run(stop_at, stop_flag)
        run_end = time.time()
        hung = [w.name for w in wls if not w.join()]
        if hung:
            problems.append("workloads did not finish in time: %s" % hung)
        if not c.wait_replicated(60):
            problems.append("after healing, the region never had every replica and a leader again")

        # Checks.
        reg_final = workloads.RawClient(c)
        for key in reg.keys:
            t0 = workloads.now_ms()
            typ, resp = reg_final.call("RawGet", pb["kv"].RawGetRequest(key=key), pb["kv"].RawGetResponse, False)
            if typ == "ok":
                reg.history.append({"p": "final", "f": "read", "key": key.decode(), "t0": t0,
                                    "t1": workloads.now_ms(), "type": "ok",
                                    "value": None if resp.not_found else resp.value.decode()})
        reg_final.close()
        results = [
            ("register", reg.history, checkers.check_register(reg.history)),
            ("bank", bank.history, checkers.check_bank(bank.history, BANK_ACCOUNTS, BANK_TOTAL)),
            ("monotonic", mono.history, checkers.check_monotonic(mono.history)),
            ("longfork", lf.history, checkers.check_longfork(lf.history)),
        ]
        results.append(("tso", tso.history, checkers.check_tso(tso.history)))
        fs.unmount()
        if not fs.mount():
            problems.append("the mount did not come back for the final check")
        final = fs.final_contents()
        results.append(("set", fs.history, checkers.check_set(fs.history, final)))
        for wname, hist, (ok, probs) in results:
            s = checkers.summarize(hist)
            why = {}
            for op in hist:
                if op["type"] != "ok":
                    k = "%s %s" % (op["type"], op.get("err", "short balance" if op.get("short") else "?")[:60])
                    why[k] = why.get(k, 0) + 1
            if why:
                log("  %s not ok: %s" % (wname, ", ".join("%s x%d" % kv for kv in
                                                          sorted(why.items(), key=lambda kv: -kv[1])[:4])))
            figures.append("%s ok/failed/indeterminate %d/%d/%d" % (wname, s["ok"], s["fail"], s["info"]))
            if s["ok"] == 0:
                probs = probs + ["no operation succeeded"]
                ok = False
            if not ok:
                problems.extend("%s: %s" % (wname, p) for p in probs)
        for d in (bank, mono, lf):
            if d.proc.returncode != 0:
                problems.append("%s driver exited %s: %s" % (d.name, d.proc.returncode, d.stderr[-500:]))
        if nem.fsync_failed and nem.kept_running:
            problems.append("fail-stop: %s kept running while its fdatasync failed" % sorted(set(nem.kept_running)))
        ok, why = replicas_agree(c, log)
        if not ok:
            problems.append("replicas: " + why)
        per = {wname: stalls(nem.events, [op["t1"] / 1000.0 for op in hist if op["type"] == "ok"], run_end)
               for wname, hist, _ in results}
        names = [wname for wname, _, _ in results]
        figures.append("seconds without progress after each fault (%s): %s" % (
            "/".join(names), " ".join("/".join("%.1f" % per[n][k][2] for n in names)
                                      for k in range(len(nem.events)))))
        for k, (desc, dur, _) in enumerate(per[names[0]]):
            log("  fault %-40s for %.1f s: without an acknowledged op for %s s" % (
                desc, dur, "/".join("%.2f" % per[n][k][2] for n in names)))
    finally:
        nem.heal_all()
        if fs:
            fs.unmount()
        c.stop_all()
        fw.heal()
        if problems:
            log(c.logs_tail())
        shutil.rmtree(tmp, ignore_errors=True)
    for p in problems:
        log("  ANOMALY " + p)
    return not problems, "; ".join(figures)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--matrix", action="store_true")
    ap.add_argument("--run", action="append", default=[])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    known = {run_name(f, n): (f, n) for f, n in SHORT + MATRIX}
    if a.list:
        print("\n".join(sorted(known) + sorted(REGRESSIONS)))
        return 0
    seed = a.seed if a.seed is not None else int(time.time()) % 1000000
    if a.run:
        runs = [(known[r][0], known[r][1], seed, a.duration or 30) if r in known else REGRESSIONS[r][:4]
                for r in a.run]
    elif a.matrix:
        runs = [(f, n, seed, a.duration or 60) for f, n in MATRIX] + [v[:4] for v in REGRESSIONS.values()]
    else:
        runs = [(f, n, seed, a.duration or 20) for f, n in SHORT]
    print("chaos: seed %d, %d runs" % (seed, len(runs)), flush=True)
    chaos_lib.Firewall.sweep_dead_runs()

    def log(s):
        print(s, flush=True)

    passed = failed = 0
    for fault, n, seed, duration in runs:
        name = run_name(fault, n)
        t0 = time.time()
        log("=== %s (seed %d)" % (name, seed))
        try:
            ok, fig = one_run(fault, n, seed, duration, log)
        except Exception as e:  # noqa: BLE001 - a crashed run is a failed run
            import traceback

            traceback.print_exc()
            ok, fig = False, "%s: %s" % (type(e).__name__, e)
        print("%s %s [%.0f s] %s" % ("PASS" if ok else "FAIL", name, time.time() - t0, fig), flush=True)
        if ok:
            passed += 1
        else:
            failed += 1
            print("  re-run: tests/chaos/run.py --run %s --seed %d --duration %.0f" % (name, seed, duration))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
