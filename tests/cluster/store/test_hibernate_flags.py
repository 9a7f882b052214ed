#!/usr/bin/python3
# tinykv-server's hibernation flags: --hibernate-ticks and --idle-region-heartbeat-ticks are taken
# (the store says so at start, and a region sleeps under them), "0" turns hibernation off, and bad
# values are refused with exit status 2 and a message naming the flag, before anything starts.
#
# Environment: BINDIR (default bin/). Prints PASS/FAIL per check and "N passed, N failed"; exits
# 1 on any failure.

import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request

from checks import check, free_port, summary, wait_for

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BINDIR = os.path.join(REPO, os.environ.get("BINDIR", "bin"))


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def metric(port, name):
    """A store's metric from its status port (None until the port answers)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=3) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
    except OSError:
        pass
    return None


def refused(tmp, flags, flag_name):
    """Runs a store with bad flags: it must exit 2 at once, naming the flag, and start nothing."""
    data = os.path.join(tmp, "refused")
    p = subprocess.run([os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % free_port(),
                        "--data-dir", data, "--scheduler", "127.0.0.1:1", "--status-addr", "127.0.0.1:0"]
                       + flags, capture_output=True, text=True, timeout=30)
    check("%s is refused" % " ".join(flags),
          p.returncode == 2 and ("--" + flag_name) in p.stderr and "is not a tick count" in p.stderr
          and not os.path.exists(data), "exit %d, stderr %r" % (p.returncode, p.stderr.strip()))


def main():
    tmp = tempfile.mkdtemp(prefix="tinykv-hibernate-flags-")
    procs = []
    try:
        for value in ("-1", "abc", "5x", "", "1000001", "99999999999999999999"):
            refused(tmp, ["--hibernate-ticks", value], "hibernate-ticks")
        for value in ("0", "-3", "x", "1000001"):
            refused(tmp, ["--idle-region-heartbeat-ticks", value], "idle-region-heartbeat-ticks")

        pd_port, http_port = free_port(), free_port()
        procs.append(subprocess.Popen(
            [os.path.join(BINDIR, "tinyscheduler-server"), "--addr", "127.0.0.1:%d" % pd_port,
             "--http-addr", "127.0.0.1:%d" % http_port, "--data-dir", os.path.join(tmp, "pd"),
             "--log-level", "warn"], stderr=open(os.path.join(tmp, "pd.log"), "w")))

        def store(name, flags):
            sp = free_port()
            log = os.path.join(tmp, name + ".log")
            procs.append(subprocess.Popen(
                [os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % free_port(),
                 "--data-dir", os.path.join(tmp, name), "--scheduler", "127.0.0.1:%d" % pd_port,
                 "--status-addr", "127.0.0.1:%d" % sp, "--log-level", "info"] + flags,
                stderr=open(log, "w")))
            return sp, log

        # One store holding the cluster's only region: with a short idle span it sleeps.
        sp, log = store("s0", ["--hibernate-ticks", "7", "--idle-region-heartbeat-ticks", "42"])
        said = wait_for(lambda: re.search(r"hibernation: an idle region sleeps after (\d+) ticks; "
                                          r"asleep leaders report every (\d+) ticks", read(log)), 30)
        check("the store takes --hibernate-ticks 7 --idle-region-heartbeat-ticks 42",
              said is not None and said.groups() == ("7", "42"), said.group(0) if said else read(log)[-500:])
        asleep = wait_for(lambda: (metric(sp, "tinykv_raft_hibernated_peers") or 0) >= 1, 30)
        check("its idle region hibernates", asleep)
        first = procs.pop()
        first.terminate()
        first.wait(timeout=20)

        # Hibernation off: the store says so (a second store joins the same cluster).
        _, log = store("s1", ["--hibernate-ticks", "0"])
        off = wait_for(lambda: "hibernation: off" in read(log), 30)
        check("--hibernate-ticks 0 turns hibernation off", off, "" if off else read(log)[-500:])
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if summary() else 1)


if __name__ == "__main__":
    main()
