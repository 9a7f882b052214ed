# checks.py — what the store layer's multi-process test scripts share: PASS/FAIL lines, free
# ports, bounded waits. Imported by test_splits.py and test_many_regions.py (not a test itself).

import socket
import time

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
