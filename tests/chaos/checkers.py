# checkers.py — the chaos suite's history checkers: each takes a history (a list of operation dicts)
# and returns (ok, problems), problems being human-readable lines naming the operations at fault.
#
# Owns nothing but the algorithms. Callers: tests/chaos/run.py and tests/chaos/test_checkers.py
# (which feeds each checker a history with a known anomaly). Never: reads the cluster.
#
# An operation: {"p": process, "f": name, "t0": invoke ms, "t1": complete ms, "type": "ok" |
# "fail" | "info", ...}. "fail" certainly did not take effect; "info" may have taken effect at any
# point after t0, or never.

INF = float("inf")


# ------------------------------------------------------------------- register: linearizability

def _linearizable_register(ops, budget):
    """Wing & Gong's search with Lowe's memoisation (as in Knossos and Porcupine) over one key's
    register operations: writes (value) and reads (value, None = absent), initial value None.
    Returns True, False, or None if the search ran out of `budget` steps."""
    # Events in time order; a call sorts before a return at the same instant (concurrent).
    events = []
    for i, op in enumerate(ops):
        events.append((op["t0"], 0, i))
        events.append((op["t1"] if op["type"] == "ok" else INF, 1, i))
    events.sort()
    # A doubly linked list over the events: [kind, op index, prev, next, match].
    n = len(events)
    nodes = [[k, i, j - 1, j + 1, None] for j, (_, k, i) in enumerate(events)]
    head = n  # sentinel
    nodes.append([None, None, None, 0 if n else None, None])
    if n:
        nodes[0][2] = head
        nodes[n - 1][3] = None
    call_of = {}
    for j, nd in enumerate(nodes[:n]):
        if nd[0] == 0:
            call_of[nd[1]] = j
        else:
            nodes[call_of[nd[1]]][4] = j

    def lift(j):
        for x in (j, nodes[j][4]):
            p, q = nodes[x][2], nodes[x][3]
            nodes[p][3] = q
            if q is not None:
                nodes[q][2] = p

    def unlift(j):
        for x in (nodes[j][4], j):
            p, q = nodes[x][2], nodes[x][3]
            nodes[p][3] = x
            if q is not None:
                nodes[q][2] = x

    state = None
    linearized = 0
    cache = set()
    stack = []
    entry = nodes[head][3]
    steps = 0
    while nodes[head][3] is not None:
        steps += 1
        if steps > budget:
            return None
        if entry is None:
            return False
        kind, i = nodes[entry][0], nodes[entry][1]
        if kind == 0:
            op = ops[i]
            if op["f"] == "write":
                ok, new = True, op["value"]
            else:
                ok, new = op["value"] == state, state
            key = (linearized | (1 << i), new)
            if ok and key not in cache:
                cache.add(key)
                stack.append((entry, state))
                state = new
                linearized |= 1 << i
                lift(entry)
                entry = nodes[head][3]
            else:
                entry = nodes[entry][3]
        else:
            if not stack:
                return False
            entry, state = stack.pop()
            linearized &= ~(1 << nodes[entry][1])
            unlift(entry)
            entry = nodes[entry][3]
    return True


def check_register(history, budget=2000000):
    """Linearizability per key of raw reads and writes (values unique per write)."""
    problems = []
    by_key = {}
    for op in history:
        by_key.setdefault(op["key"], []).append(op)
    for key, ops in sorted(by_key.items()):
        read_values = {op["value"] for op in ops if op["f"] == "read" and op["type"] == "ok"}
        kept = []
        for op in ops:
            if op["type"] == "fail":
                continue  # certainly no effect
            if op["f"] == "read" and op["type"] != "ok":
                continue  # a read without an answer constrains nothing
            if op["f"] == "write" and op["type"] == "info" and op["value"] not in read_values:
                continue  # never observed: it can take effect after everything
            kept.append(op)
        r = _linearizable_register(kept, budget)
        if r is False:
            failed = {op["value"]: op for op in ops if op["f"] == "write" and op["type"] == "fail"}
            lies = ["  a read saw %r, whose write was answered failed: p%s [%s..%s] %s" % (
                    v, failed[v]["p"], failed[v]["t0"], failed[v]["t1"], failed[v].get("err", ""))
                    for v in sorted(read_values & set(failed))]
            problems.append("key %r: not linearizable\n%s%s" % (key, "".join(l + "\n" for l in lies[:5]),
                                                              _excerpt(kept)))
        elif r is None:
            problems.append("key %r: search gave up after %d steps (%d ops)" % (key, budget, len(kept)))
    return not problems, problems


def _excerpt(ops, limit=30):
    """The history around the first read no write can explain, else its first ops."""
    written = {op["value"] for op in ops if op["f"] == "write"}
    bad = [op for op in ops if op["f"] == "read" and op["value"] is not None and op["value"] not in written]
    ops = sorted(ops, key=lambda o: o["t0"])
    at = ops.index(bad[0]) if bad else 0
    lo = max(0, at - limit // 2)
    return "ops %d..%d of %d:\n    %s" % (lo, lo + limit, len(ops), "\n    ".join(
        "%s p%s %s %r [%s..%s]" % (o["type"], o["p"], o["f"], o["value"], o["t0"], o["t1"])
        for o in ops[lo:lo + limit]))


# -------------------------------------------------------------------------------------- bank

def check_bank(history, accounts, total):
    """Every ok snapshot read sees every account, none negative, summing to `total`."""
    problems = []
    reads = 0
    for op in history:
        if op["f"] != "read" or op["type"] != "ok":
            continue
        reads += 1
        v = op["value"]
        if len(v) != accounts or sum(v) != total or min(v) < 0:
            problems.append("read by p%s at [%s..%s] saw %s (sum %d, want %d over %d accounts)"
                            % (op["p"], op["t0"], op["t1"], v, sum(v), total, accounts))
    if not reads:
        problems.append("no read succeeded")
    return not problems, problems[:20]


# ----------------------------------------------------------------------------- monotonic

def check_monotonic(history):
    """A counter only goes up: a read or increment that completed before another operation began
    is never above what that later read saw; no two acknowledged increments wrote the same value
    (a lost update); the final read covers every acknowledged increment."""
    problems = []
    oks = sorted((op for op in history if op["type"] == "ok" and op["f"] in ("read", "inc")),
                 key=lambda o: o["t1"])
    reads = sorted((op for op in oks if op["f"] == "read"), key=lambda o: o["t0"])
    # Sweep reads by start time, keeping the largest value completed before each start.
    best, best_op, k = -1, None, 0
    for r in reads:
        while k < len(oks) and oks[k]["t1"] < r["t0"]:
            if oks[k]["value"] > best:
                best, best_op = oks[k]["value"], oks[k]
            k += 1
        if r["value"] < best:
            problems.append("p%s read %d at [%s..%s] after %s p%s saw %d (done at %s)"
                            % (r["p"], r["value"], r["t0"], r["t1"], best_op["f"], best_op["p"], best,
                               best_op["t1"]))
    seen = {}
    for op in oks:
        if op["f"] == "inc":
            if op["value"] in seen:
                problems.append("two acknowledged increments wrote %d (p%s and p%s): a lost update"
                                % (op["value"], seen[op["value"]]["p"], op["p"]))
            seen[op["value"]] = op
    return not problems, problems[:20]


def check_longfork(history):
    """Snapshot isolation has one commit order, so the inserts two reads of a group saw are
    ordered by inclusion: a read that sees an insert another misses, and misses one the other
    sees, is a long fork. An insert answered failed is never seen."""
    problems = []
    failed = {(op["group"], op["slot"]) for op in history if op["f"] == "insert" and op["type"] == "fail"}
    groups = {}
    for op in history:
        if op["f"] == "read" and op["type"] == "ok":
            seen = frozenset(i for i, b in enumerate(op["value"]) if b)
            groups.setdefault(op["group"], []).append((seen, op))
            for i in seen:
                if (op["group"], i) in failed:
                    problems.append("read by p%s at [%s..%s] saw insert %d/%d, answered failed"
                                    % (op["p"], op["t0"], op["t1"], op["group"], i))
    for g, reads in sorted(groups.items()):
        reads.sort(key=lambda r: len(r[0]))
        for (a, oa), (b, ob) in zip(reads, reads[1:]):
            if not a <= b:
                problems.append("group %d: long fork: p%s [%s..%s] saw slots %s, p%s [%s..%s] saw %s"
                                % (g, oa["p"], oa["t0"], oa["t1"], sorted(a), ob["p"], ob["t0"], ob["t1"],
                                   sorted(b)))
                break
    return not problems, problems[:20]


def check_tso(history):
    """A timestamp handed out after another was received is strictly greater."""
    problems = []
    oks = sorted((op for op in history if op["type"] == "ok"), key=lambda o: o["t1"])
    best, best_op, k = -1, None, 0
    for op in sorted(oks, key=lambda o: o["t0"]):
        while k < len(oks) and oks[k]["t1"] < op["t0"]:
            if oks[k]["value"] > best:
                best, best_op = oks[k]["value"], oks[k]
            k += 1
        if op["value"] <= best:
            problems.append("timestamp %d at [%s..%s] is not above %d received at %s"
                            % (op["value"], op["t0"], op["t1"], best, best_op["t1"]))
    return not problems, problems[:20]


# -------------------------------------------------------------------------------------- set

def check_set(history, final):
    """Every file whose close returned 0 is in `final` (name -> bytes) with its exact content."""
    problems = []
    for op in history:
        if op["type"] != "ok":
            continue
        got = final.get(op["name"])
        if got is None:
            problems.append("%s: acknowledged at %s, missing" % (op["name"], op["t1"]))
        elif got != op["content"]:
            problems.append("%s: acknowledged at %s with %d bytes, has %d different bytes"
                            % (op["name"], op["t1"], len(op["content"]), len(got)))
    return not problems, problems[:20]


def summarize(history):
    c = {"ok": 0, "fail": 0, "info": 0}
    for op in history:
        c[op["type"]] = c.get(op["type"], 0) + 1
    return c
