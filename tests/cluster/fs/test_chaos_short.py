#!/usr/bin/python3
# The chaos suite's short version (tests/chaos/README.md): its checkers fed known anomalies, then
# four runs (SIGKILL, SIGSTOP and isolation of the leader store, 20-40% packet loss) of every
# workload (raw register, bank, counter and long-fork transactions, timestamps, files through the
# mount) at once.
#
# Needs root (a uid per store, iptables) and /dev/fuse; fails, never skips, without them.
# Environment: BINDIR, BUILD, CHAOS_SEED (default: from the clock; printed, so a failure can be
# re-run). Prints PASS/FAIL per case and run, then "N passed, N failed".

import os
import re
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))


def run(args):
    p = subprocess.run(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = p.stdout.decode(errors="replace")
    sys.stdout.write(out)
    sys.stdout.flush()
    m = re.findall(r"^(\d+) passed, (\d+) failed", out, re.M)
    passed, failed = (int(m[-1][0]), int(m[-1][1])) if m else (0, 0)
    if p.returncode != 0 and failed == 0:
        failed = 1
    return passed, failed


def main():
    seed = os.environ.get("CHAOS_SEED", str(int(time.time()) % 1000000))
    a = run([os.path.join(REPO, "tests", "chaos", "test_checkers.py")])
    b = run([os.path.join(REPO, "tests", "chaos", "run.py"), "--short", "--seed", seed])
    print("%d passed, %d failed" % (a[0] + b[0], a[1] + b[1]))
    return 1 if a[1] + b[1] else 0


if __name__ == "__main__":
    sys.exit(main())
