#!/usr/bin/python3
# The stores' HTTP status port: /metrics as Prometheus text, /status and /regions as JSON, JSON errors.
#
# Starts a scheduler and three tinykv-server processes on free loopback ports
# (each with its own --status-addr), writes through tinykv-ctl, then reads
# every store's status port; also a standalone store, and a store whose status
# port is taken.
#
# Environment: BINDIR (default bin/). Prints PASS/FAIL per check and
# "N passed, N failed"; exits 1 on any failure.

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BINDIR = os.path.join(REPO, os.environ.get("BINDIR", "bin"))
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (" -- " + detail) if detail else ""), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, method="GET"):
    """(status, content type, body text) of one HTTP call; never raises for HTTP errors."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def wait_for(fn, timeout_s=30):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception:
            pass
        time.sleep(0.2)
    return None


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prometheus(text):
    """Parses the text exposition format strictly: {family: {"type": t, "samples": [(name, labels, value)]}}.
    Raises ValueError on anything malformed."""
    families, current = {}, None
    if not text.endswith("\n"):
        raise ValueError("does not end with a newline")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            if name in families:
                raise ValueError("family %s declared twice" % name)
            families[name] = {"type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            if name != current or typ not in ("counter", "gauge", "histogram"):
                raise ValueError("bad TYPE line %r" % line)
            families[name]["type"] = typ
        else:
            m = SAMPLE.match(line)
            if not m:
                raise ValueError("bad sample line %r" % line)
            name, labels_text, value = m.group(1), m.group(2) or "", m.group(3)
            fam = families.get(current)
            base = name
            if fam and fam["type"] == "histogram":
                for suffix in ("_bucket", "_sum", "_count"):
                    if name.endswith(suffix):
                        base = name[: -len(suffix)]
            if base != current:
                raise ValueError("sample %s outside its family" % name)
            labels, pos = {}, 0
            while pos < len(labels_text):
                lm = LABEL.match(labels_text, pos)
                if not lm:
                    raise ValueError("bad labels %r" % labels_text)
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
            fam["samples"].append((name, labels, float(value)))
    return families


def histogram_consistent(fam):
    """Cumulative buckets never decrease and +Inf equals _count, per label set."""
    series = {}
    for name, labels, value in fam["samples"]:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(key, {"buckets": [], "count": None})
        if name.endswith("_bucket"):
            s["buckets"].append((labels["le"], value))
        elif name.endswith("_count"):
            s["count"] = value
    for s in series.values():
        values = [v for _, v in s["buckets"]]
        if values != sorted(values) or not s["buckets"] or s["buckets"][-1][0] != "+Inf":
            return False
        if s["buckets"][-1][1] != s["count"]:
            return False
    return bool(series)


def value(fam, **labels):
    return sum(v for _, l, v in fam["samples"] if all(l.get(k) == x for k, x in labels.items()))


class Proc:
    def __init__(self, args, log):
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cluster_checks(tmp, procs):
    pd_port, http_port = free_port(), free_port()
    procs.append(Proc([os.path.join(BINDIR, "tinyscheduler-server"), "--addr", "127.0.0.1:%d" % pd_port,
                       "--http-addr", "127.0.0.1:%d" % http_port, "--data-dir", os.path.join(tmp, "pd"),
                       "--log-level", "warn"], os.path.join(tmp, "pd.log")))
    wait_for(lambda: get(http_port, "/pd/api/v1/health")[0] == 200)
    status_ports = []
    for i in range(3):
        sp = free_port()
        status_ports.append(sp)
        procs.append(Proc([os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % free_port(),
                           "--data-dir", os.path.join(tmp, "store%d" % i), "--scheduler", "127.0.0.1:%d" % pd_port,
                           "--status-addr", "127.0.0.1:%d" % sp, "--log-level", "warn"],
                          os.path.join(tmp, "store%d.log" % i)))
        if i == 0:
            wait_for(lambda: get(sp, "/status")[0] == 200)

    def replicated():
        r = json.loads(get(http_port, "/pd/api/v1/regions")[2])["regions"]
        return r and len(r[0]["peers"]) == 3 and r[0]["leader"].get("id")

    check("cluster_replicates_with_status_ports", wait_for(replicated, 60))
    pd = "127.0.0.1:%d" % pd_port
    ctl = os.path.join(BINDIR, "tinykv-ctl")
    put = subprocess.run([ctl, "--pd", pd, "raw", "put", "status-key", "v"], capture_output=True, timeout=30)
    got = subprocess.run([ctl, "--pd", pd, "raw", "get", "status-key"], capture_output=True, timeout=30)
    check("writes_and_reads_through_the_cluster", put.returncode == 0 and got.stdout.strip() == b"v",
          (put.stderr + got.stderr).decode()[-300:])

    # Every store applies the put: the followers' applied index catches up (bounded poll).
    def all_regions():
        out = []
        for sp in status_ports:
            st, ctype, body = get(sp, "/regions")
            if st != 200 or not ctype.startswith("application/json"):
                return None
            out.append(json.loads(body))
        return out if all(r["count"] == 1 for r in out) else None

    regions = wait_for(all_regions)
    check("regions_is_json_with_one_region_per_store", regions is not None)
    if regions:
        leaders = [r for rs in regions for r in rs["regions"] if r["role"] == "leader"]
        check("exactly_one_store_leads_the_region", len(leaders) == 1, json.dumps(regions)[:400])
        check("regions_show_applied_index_and_epoch",
              all(r["applied_index"] > 0 and r["epoch"]["conf_ver"] >= 1 for rs in regions for r in rs["regions"]))
        check("all_stores_agree_on_the_region", len({r["region_id"] for rs in regions for r in rs["regions"]}) == 1)
        check("regions_carry_approximate_size_and_keys_fields",
              all("approximate_size" in r and "approximate_keys" in r for rs in regions for r in rs["regions"]))

    pd_stores = {s["store"]["id"] for s in json.loads(get(http_port, "/pd/api/v1/stores")[2])["stores"]}
    statuses = []
    for sp in status_ports:
        st, ctype, body = get(sp, "/status")
        statuses.append(json.loads(body) if st == 200 and ctype.startswith("application/json") else None)
    check("status_is_json_for_every_store", all(statuses))
    if all(statuses):
        check("status_names_the_scheduler_s_stores", {s["store_id"] for s in statuses} == pd_stores,
              "%s vs %s" % ([s["store_id"] for s in statuses], pd_stores))
        check("status_reports_version_uptime_and_data_dir_usage",
              all(s["version"] and s["uptime_seconds"] >= 0 and s["data_dir_bytes"] > 0 and s["capacity_bytes"] > 0
                  and s["mode"] == "cluster" for s in statuses), json.dumps(statuses[0]))

    parsed = []
    for sp in status_ports:
        st, ctype, body = get(sp, "/metrics")
        try:
            parsed.append(parse_prometheus(body) if st == 200 and ctype.startswith("text/plain") else None)
        except ValueError as e:
            check("metrics_parse_as_prometheus_text", False, str(e))
            parsed.append(None)
    check("metrics_parse_as_prometheus_text_on_every_store", all(parsed))
    if all(parsed):
        need = ["tinykv_grpc_requests_total", "tinykv_grpc_request_duration_seconds", "tinykv_regions",
                "tinykv_leaders", "tinykv_pd_heartbeats_total", "tinykv_pd_heartbeat_failures_total",
                "tinykv_txn_key_errors_total"]
        missing = [n for n in need for p in parsed if n not in p]
        check("metrics_include_grpc_scheduler_txn_and_region_families", not missing, str(missing))
        if not missing:
            check("every_metric_has_the_tinykv_prefix", all(n.startswith("tinykv_") for p in parsed for n in p))
            check("latency_histograms_are_cumulative_and_consistent",
                  all(histogram_consistent(p["tinykv_grpc_request_duration_seconds"]) for p in parsed))
            check("one_region_everywhere_one_leader_in_all",
                  all(value(p["tinykv_regions"]) == 1 for p in parsed)
                  and sum(value(p["tinykv_leaders"]) for p in parsed) == 1)
            puts = sum(value(p["tinykv_grpc_requests_total"], method="RawPut", outcome="ok") for p in parsed)
            check("the_put_is_counted_by_method_and_outcome", puts >= 1, "RawPut ok = %s" % puts)
            raft = ["tinykv_raft_proposals_total", "tinykv_raft_entries_appended_total",
                    "tinykv_raft_entries_committed_total", "tinykv_raft_entries_applied_total",
                    "tinykv_raftdb_write_batch_bytes", "tinykv_raftdb_sync_duration_seconds",
                    "tinykv_apply_duration_seconds", "tinykv_raft_pending_reads", "tinykv_snapshots_total",
                    "tinykv_snapshot_bytes_total"]
            missing = [n for n in raft for p in parsed if n not in p]
            check("metrics_include_the_raftstore_families", not missing, str(missing))
            if not missing:
                check("every_store_appends_and_applies_entries",
                      all(value(p["tinykv_raft_entries_appended_total"]) > 0
                          and value(p["tinykv_raft_entries_applied_total"]) > 0 for p in parsed))
                check("raft_db_histograms_are_consistent",
                      all(histogram_consistent(p[n]) for p in parsed for n in
                          ("tinykv_raftdb_write_batch_bytes", "tinykv_raftdb_sync_duration_seconds",
                           "tinykv_apply_duration_seconds")))
                sent = sum(value(p["tinykv_snapshots_total"], direction="sent") for p in parsed)
                got = sum(value(p["tinykv_snapshots_total"], direction="received") for p in parsed)
                got_bytes = sum(value(p["tinykv_snapshot_bytes_total"], direction="received") for p in parsed)
                check("replicas_arrive_as_counted_snapshots", sent >= 2 and got >= 2 and got_bytes > 0,
                      "sent %s received %s (%s bytes)" % (sent, got, got_bytes))
                check("the_leader_counts_proposals",
                      sum(value(p["tinykv_raft_proposals_total"]) for p in parsed) >= 1)
            hbs = sum(value(p["tinykv_pd_heartbeats_total"], kind="store") for p in parsed)
            check("store_heartbeats_are_counted", hbs >= 3, "store heartbeats = %s" % hbs)

    # examples/grafana-dashboard.json queries only metrics these processes export.
    if all(parsed):
        try:
            pd_fams = parse_prometheus(get(http_port, "/metrics")[2])
        except ValueError as e:
            pd_fams = {}
            check("scheduler_metrics_parse", False, str(e))
        known = set(pd_fams)
        for p in parsed:
            known |= set(p)
        with open(os.path.join(REPO, "examples", "grafana-dashboard.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"\b(?:tinykv|pd)_[a-z_]+", e)}
        unknown = sorted(used - known)
        check("grafana_dashboard_queries_exported_metrics", exprs and not unknown, str(unknown))

    sp = status_ports[0]
    st, ctype, body = get(sp, "/no/such/path")
    check("unknown_path_is_404_json", st == 404 and ctype.startswith("application/json") and "error" in json.loads(body),
          "%s %s" % (st, body))
    st, ctype, body = get(sp, "/metrics", method="POST")
    check("post_is_405_json", st == 405 and "error" in json.loads(body), "%s %s" % (st, body))
    st, _, _ = get(sp, "/regions/")
    check("one_trailing_slash_is_the_same_path", st == 200)

    # A second store on a status port that is taken fails at start with a message.
    taken = status_ports[1]
    r = subprocess.run([os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % free_port(),
                        "--data-dir", os.path.join(tmp, "store-extra"), "--scheduler", pd,
                        "--status-addr", "127.0.0.1:%d" % taken, "--log-level", "warn"],
                       capture_output=True, timeout=60)
    check("a_taken_status_port_fails_the_start", r.returncode == 1 and b"status port" in r.stderr,
          r.stderr.decode()[-300:])
    n_stores = len(json.loads(get(http_port, "/pd/api/v1/stores")[2])["stores"])
    check("a_store_that_fails_on_its_status_port_never_joins", n_stores == 3, "%d stores" % n_stores)


def standalone_checks(tmp, procs):
    sp = free_port()
    procs.append(Proc([os.path.join(BINDIR, "tinykv-server"), "--standalone", "--addr", "127.0.0.1:%d" % free_port(),
                       "--data-dir", os.path.join(tmp, "standalone"), "--status-addr", "127.0.0.1:%d" % sp,
                       "--log-level", "warn"], os.path.join(tmp, "standalone.log")))
    st = wait_for(lambda: json.loads(get(sp, "/status")[2]))
    check("standalone_store_serves_status", st and st["mode"] == "standalone" and st["store_id"] == 0, str(st))
    regions = json.loads(get(sp, "/regions")[2])
    check("standalone_store_has_no_regions", regions["count"] == 0 and regions["regions"] == [])
    try:
        fams = parse_prometheus(get(sp, "/metrics")[2])
        check("standalone_metrics_parse", "tinykv_grpc_requests_total" in fams)
    except ValueError as e:
        check("standalone_metrics_parse", False, str(e))


def main():
    tmp = tempfile.mkdtemp(prefix="tinykv-status-")
    procs = []
    try:
        cluster_checks(tmp, procs)
        standalone_checks(tmp, procs)
    finally:
        for p in procs:
            p.stop()
        if all(results):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("logs kept in " + tmp)
    print("%d passed, %d failed" % (results.count(True), results.count(False)))
    sys.exit(0 if results and all(results) else 1)


if __name__ == "__main__":
    main()
