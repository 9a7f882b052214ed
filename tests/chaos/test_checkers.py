#!/usr/bin/python3
# test_checkers.py — the chaos suite's checkers, each fed histories with a known anomaly (which it
# must flag) and valid look-alikes (which it must pass). No cluster needed.
#
# Prints PASS/FAIL per case and "N passed, N failed"; exits 1 on any failure.

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checkers  # noqa: E402

results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (" -- " + detail) if detail else ""), flush=True)


def w(p, v, t0, t1, typ="ok", key="k"):
    return {"p": p, "f": "write", "key": key, "value": v, "t0": t0, "t1": t1, "type": typ}


def r(p, v, t0, t1, typ="ok", key="k"):
    return {"p": p, "f": "read", "key": key, "value": v, "t0": t0, "t1": t1, "type": typ}


def register_cases():
    ok = checkers.check_register
    # A stale read: b was acknowledged before the read began, yet the read sees a.
    check("register_flags_stale_read", not ok([w(0, "a", 0, 10), w(1, "b", 20, 30), r(2, "a", 40, 50)])[0])
    check("register_passes_fresh_read", ok([w(0, "a", 0, 10), w(1, "b", 20, 30), r(2, "b", 40, 50)])[0])
    # Concurrent with both writes, the read may see either.
    check("register_passes_concurrent_read",
          ok([w(0, "a", 0, 30), w(1, "b", 5, 35), r(2, "a", 10, 40), r(3, "b", 50, 60)])[0])
    # A read of a value nobody wrote.
    check("register_flags_phantom_value", not ok([w(0, "a", 0, 10), r(1, "zz", 20, 30)])[0])
    # A write answered "failed" (certainly not applied) whose value is read: the NotLeader bug.
    check("register_flags_read_of_failed_write",
          not ok([w(0, "a", 0, 10), w(1, "b", 20, 30, "fail"), r(2, "b", 40, 50)])[0])
    # An indeterminate write may take effect long after it was invoked...
    check("register_passes_late_indeterminate_write",
          ok([w(0, "a", 0, 10), w(1, "b", 20, 30, "info"), r(2, "a", 40, 50), r(2, "b", 60, 70)])[0])
    # ... but only once: a, b, then a again needs a second write of a.
    check("register_flags_value_coming_back",
          not ok([w(0, "a", 0, 10, "info"), w(1, "b", 5, 15), r(2, "a", 20, 25), r(2, "b", 30, 35),
                  r(2, "a", 40, 45)])[0])
    # Absent before any write; a read of absent after an acknowledged write is stale.
    check("register_passes_initial_absent", ok([r(0, None, 0, 5), w(1, "a", 10, 20), r(0, "a", 30, 40)])[0])
    check("register_flags_absent_after_write", not ok([w(1, "a", 0, 10), r(0, None, 20, 30)])[0])
    # Keys are independent.
    check("register_checks_keys_apart",
          ok([w(0, "a", 0, 10, key="x"), w(0, "b", 20, 30, key="y"), r(1, "a", 40, 50, key="x")])[0])
    # A larger valid history: five writers and readers in lock step stays fast.
    hist, t = [], 0
    for i in range(300):
        hist.append(w(i % 5, "v%d" % i, t, t + 7))
        hist.append(r((i + 1) % 5, "v%d" % i, t + 8, t + 12))
        t += 10
    check("register_passes_long_history", ok(hist)[0])


def bank_cases():
    read = lambda v: {"p": 0, "f": "read", "t0": 0, "t1": 1, "type": "ok", "value": v}  # noqa: E731
    check("bank_passes_conserved_total", checkers.check_bank([read([100, 90, 110])], 3, 300)[0])
    # A torn transfer: the debit is visible, the credit is not.
    check("bank_flags_torn_transfer", not checkers.check_bank([read([100, 95, 100])], 3, 300)[0])
    check("bank_flags_missing_account", not checkers.check_bank([read([150, 150])], 3, 300)[0])
    check("bank_flags_negative_balance", not checkers.check_bank([read([-5, 205, 100])], 3, 300)[0])


def monotonic_cases():
    def op(f, v, t0, t1, typ="ok", p=0):
        return {"p": p, "f": f, "value": v, "t0": t0, "t1": t1, "type": typ}

    ok = checkers.check_monotonic
    check("monotonic_passes_increasing", ok([op("inc", 1, 0, 5), op("read", 1, 10, 12), op("inc", 2, 13, 20),
                                             op("read", 2, 30, 31, p=1)])[0])
    # A read that goes back in time after another read completed.
    check("monotonic_flags_read_going_back",
          not ok([op("read", 5, 0, 10, p=0), op("read", 4, 20, 30, p=1)])[0])
    # An acknowledged increment not seen by a later read.
    check("monotonic_flags_stale_read_after_increment", not ok([op("inc", 3, 0, 10), op("read", 2, 20, 30)])[0])
    # Two acknowledged increments that both wrote 3: one increment was lost.
    check("monotonic_flags_lost_update", not ok([op("inc", 3, 0, 10), op("inc", 3, 5, 15, p=1)])[0])
    # Concurrent operations may be seen in either order.
    check("monotonic_passes_concurrent", ok([op("inc", 7, 0, 30), op("read", 6, 5, 10), op("read", 7, 11, 40)])[0])


def longfork_cases():
    def rd(p, seen, g=0):
        return {"p": p, "f": "read", "group": g, "value": seen, "t0": 0, "t1": 1, "type": "ok"}

    def ins(slot, typ="ok", g=0):
        return {"p": 9, "f": "insert", "group": g, "slot": slot, "t0": 0, "t1": 1, "type": typ}

    ok = checkers.check_longfork
    check("longfork_passes_nested_reads", ok([ins(0), ins(1), rd(0, [1, 0, 0, 0]), rd(1, [1, 1, 0, 0]),
                                              rd(2, [0, 0, 0, 0])])[0])
    # Two readers saw the two inserts in opposite orders.
    check("longfork_flags_long_fork", not ok([ins(0), ins(1), rd(0, [1, 0, 0, 0]), rd(1, [0, 1, 0, 0])])[0])
    check("longfork_flags_failed_insert_seen", not ok([ins(2, "fail"), rd(0, [0, 0, 1, 0])])[0])
    check("longfork_checks_groups_apart", ok([rd(0, [1, 0, 0, 0], g=1), rd(1, [0, 1, 0, 0], g=2)])[0])


def tso_cases():
    def ts(v, t0, t1):
        return {"p": 0, "f": "read", "value": v, "t0": t0, "t1": t1, "type": "ok"}

    check("tso_passes_increasing", checkers.check_tso([ts(10, 0, 1), ts(11, 2, 3), ts(12, 2, 4)])[0])
    # After a scheduler restart with its clock behind, a timestamp went back.
    check("tso_flags_timestamp_going_back", not checkers.check_tso([ts(10, 0, 1), ts(9, 2, 3)])[0])
    check("tso_flags_repeated_timestamp", not checkers.check_tso([ts(10, 0, 1), ts(10, 2, 3)])[0])


def set_cases():
    def add(name, content, typ="ok"):
        return {"p": 0, "f": "add", "name": name, "content": content, "t0": 0, "t1": 1, "type": typ}

    hist = [add("a", b"1"), add("b", b"22"), add("c", b"333", "info")]
    check("set_passes_all_present", checkers.check_set(hist, {"a": b"1", "b": b"22"})[0])
    check("set_flags_lost_acknowledged_file", not checkers.check_set(hist, {"a": b"1"})[0])
    check("set_flags_wrong_content", not checkers.check_set(hist, {"a": b"1", "b": b"2"})[0])


def main():
    register_cases()
    bank_cases()
    monotonic_cases()
    longfork_cases()
    tso_cases()
    set_cases()
    print("%d passed, %d failed" % (results.count(True), results.count(False)))
    return 1 if results.count(False) else 0


if __name__ == "__main__":
    sys.exit(main())
