#!/usr/bin/python3
# The scheduler's /dashboard rendered by headless Chromium against a live cluster.
#
# Starts a scheduler (with an admin token) and three tinykv-server processes on
# free loopback ports, waits until the region has three replicas and a leader,
# then loads http://.../dashboard in Debian's `chromium --headless --dump-dom`
# (after its script has run) and checks that the rendered DOM shows every
# store, every region coloured by its leader store, the operators that
# placed the replicas, and the TSO. Also: the page needs no token, loads
# nothing from elsewhere, and mutating calls still need the token.
#
# Environment: BINDIR (default bin/), CHROMIUM (default chromium). Prints
# PASS/FAIL per check and "N passed, N failed"; exits 1 on any failure.

import html.parser
import json
import os
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
CHROMIUM = os.environ.get("CHROMIUM", "chromium")
TOKEN = "dashboard-test-token"
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (" -- " + detail) if detail else ""), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, path, method="GET", token=None, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method, data=body)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def wait_for(fn, timeout_s=60):
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


class Dom(html.parser.HTMLParser):
    """Collects the elements of a dumped DOM: (tag, attrs, text of the element's own children)."""

    def __init__(self):
        super().__init__()
        self.elements, self.stack = [], []

    def handle_starttag(self, tag, attrs):
        e = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(e)
        if tag not in ("meta", "br", "img", "input", "link", "line", "rect"):
            self.stack.append(e)

    def handle_endtag(self, tag):
        while self.stack:
            e = self.stack.pop()
            if e["tag"] == tag:
                break

    def handle_data(self, data):
        for e in self.stack:
            e["text"] += data

    def find(self, **attrs):
        return [e for e in self.elements if all(e["attrs"].get(k) == v for k, v in attrs.items())]

    def with_attr(self, name):
        return [e for e in self.elements if name in e["attrs"]]


def dump_dom(url, profile):
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--user-data-dir=" + profile, "--virtual-time-budget=5000", "--dump-dom", url],
                       capture_output=True, timeout=90)
    return r.stdout.decode(errors="replace")


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


def run(tmp, procs):
    check("chromium_is_installed", shutil.which(CHROMIUM) is not None, "%s not found (make deps)" % CHROMIUM)
    pd_port, http_port = free_port(), free_port()
    procs.append(Proc([os.path.join(BINDIR, "tinyscheduler-server"), "--addr", "127.0.0.1:%d" % pd_port,
                       "--http-addr", "127.0.0.1:%d" % http_port, "--data-dir", os.path.join(tmp, "pd"),
                       "--admin-token", TOKEN, "--log-level", "warn"], os.path.join(tmp, "pd.log")))
    wait_for(lambda: http(http_port, "/pd/api/v1/health")[0] == 200)
    for i in range(3):
        procs.append(Proc([os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % free_port(),
                           "--data-dir", os.path.join(tmp, "store%d" % i), "--scheduler", "127.0.0.1:%d" % pd_port,
                           "--status-addr", "127.0.0.1:0", "--log-level", "warn"],
                          os.path.join(tmp, "store%d.log" % i)))
        if i == 0:
            wait_for(lambda: json.loads(http(http_port, "/pd/api/v1/regions")[2])["count"] == 1)

    def api(path):
        return json.loads(http(http_port, "/pd/api/v1/" + path)[2])

    def settled():
        r = api("regions")["regions"]
        s = api("stores")["stores"]
        return (len(s) == 3 and all(x["status"]["region_count"] == 1 for x in s) and r and len(r[0]["peers"]) == 3
                and r[0]["leader"].get("id") and sum(x["status"]["leader_count"] for x in s) == 1)

    check("cluster_replicates", wait_for(settled, 60))

    st, ctype, page = http(http_port, "/dashboard")
    check("dashboard_is_served_without_a_token", st == 200 and ctype.startswith("text/html"), "%s %s" % (st, ctype))
    check("dashboard_loads_nothing_from_elsewhere",
          "src=\"http" not in page and "<link" not in page and "@import" not in page and "//cdn" not in page)
    st, _, _ = http(http_port, "/pd/api/v1/schedulers", method="POST", body=b'{"name": "balance-leader-scheduler"}')
    check("mutations_still_need_the_token", st == 401, "status %s" % st)

    stores = sorted(s["store"]["id"] for s in api("stores")["stores"])
    regions = api("regions")["regions"]
    leader_of = {r["id"]: r["leader"]["store_id"] for r in regions}
    records = api("operators/records")

    # The page renders asynchronously: load it until its script has filled in what the API says
    # (bounded; a scheduler under load may answer the first loads slowly).
    profile = os.path.join(tmp, "chromium-profile")
    dom, last = None, ""
    for _ in range(10):
        last = dump_dom("http://127.0.0.1:%d/dashboard" % http_port, profile)
        d = Dom()
        d.feed(last)
        rows = {int(e["attrs"]["data-store-id"]) for e in d.elements
                if e["tag"] == "tr" and "data-store-id" in e["attrs"]}
        if d.find(**{"data-loaded": "1"}) and rows == set(stores):
            dom = d
            break
        time.sleep(0.5)
    check("chromium_renders_the_dashboard_script", dom is not None, "" if dom else last[-400:])
    if dom is None:
        return
    rows = [e for e in dom.elements if e["tag"] == "tr" and "data-store-id" in e["attrs"]]
    check("stores_table_has_a_row_per_store", sorted(int(e["attrs"]["data-store-id"]) for e in rows) == stores)
    check("stores_table_shows_state_up", all("Up" in e["text"] for e in rows), str([e["text"] for e in rows]))
    leader_cells = [e for e in dom.elements if e["attrs"].get("class") == "num store-leaders"]
    check("stores_table_shows_leader_counts", sorted(e["text"] for e in leader_cells) == ["0", "0", "1"],
          str([e["text"] for e in leader_cells]))
    segs = [e for e in dom.elements if e["tag"] == "div" and "data-region-id" in e["attrs"]]
    check("key_space_bar_has_every_region", sorted(int(e["attrs"]["data-region-id"]) for e in segs)
          == sorted(leader_of), str([e["attrs"] for e in segs]))
    check("key_space_is_coloured_by_leader_store",
          all(int(e["attrs"]["data-leader-store"]) == leader_of[int(e["attrs"]["data-region-id"])]
              and "background" in e["attrs"].get("style", "") for e in segs))
    bars = [e for e in dom.elements if e["tag"] == "rect" and "data-store-id" in e["attrs"]]
    region_bars = {int(e["attrs"]["data-store-id"]): int(e["attrs"]["data-value"]) for e in bars
                   if e["attrs"].get("class") == "bar-regions"}
    check("chart_has_a_region_bar_per_store", region_bars == {s: 1 for s in stores}, str(region_bars))
    tso = dom.find(id="tso")
    check("tso_is_shown", tso and tso[0]["text"].split(" ")[0].isdigit(), tso and tso[0]["text"])
    ops = [e for e in dom.elements if e["tag"] == "tr" and "make-up-replica" in e["text"]]
    check("recent_operators_show_the_replica_placement", len(records) >= 2 and len(ops) >= 2,
          "%d records, %d rows" % (len(records), len(ops)))
    check("no_error_banner", not any(e["text"].strip() for e in dom.find(id="error")))

    st, _, text = http(http_port, "/metrics")
    check("scheduler_metrics_include_its_grpc_calls",
          st == 200 and 'tinykv_grpc_requests_total{method="StoreHeartbeat",outcome="ok"}' in text)


def main():
    tmp = tempfile.mkdtemp(prefix="tinykv-dashboard-")
    procs = []
    try:
        run(tmp, procs)
    finally:
        for p in procs:
            p.stop()
        if results and all(results):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("logs kept in " + tmp)
    print("%d passed, %d failed" % (results.count(True), results.count(False)))
    sys.exit(0 if results and all(results) else 1)


if __name__ == "__main__":
    main()
