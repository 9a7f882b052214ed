#!/usr/bin/python3
# Full Percolator transactions against a real standalone tinykv-server, driven by a stock gRPC client.
#
# Messages are generated at run time by the stock protoc from proto/*.proto
# (Debian's python3-grpcio and python3-protobuf), methods are called by path.
# A standalone store has no scheduler, so timestamps come from a counter in
# this test (physical ms << 18 | logical, strictly increasing).
#
# Scenarios: commit then read at versions; conflicts; rollback; lock
# resolution through CheckTxnStatus and ResolveLock; scan; concurrent clients
# racing read-modify-write increments (no lost update) and transfers between
# two keys with snapshot readers (no torn transaction). Prints PASS/FAIL per
# check and "N passed, N failed". Environment: BINDIR (default bin/).

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BINDIR = os.path.join(REPO, os.environ.get("BINDIR", "bin"))
kv = None
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (" -- " + detail) if detail and not ok else ""), flush=True)


class Clock:
    """A TSO stand-in: strictly increasing physical<<18|logical timestamps."""

    def __init__(self):
        self.lock = threading.Lock()
        self.last = 0

    def next(self):
        with self.lock:
            self.last = max(self.last + 1, int(time.time() * 1000) << 18)
            return self.last


clock = Clock()


class Store:
    def __init__(self, addr):
        self.channel = grpc.insecure_channel(addr)

    def call(self, method, req, resp_cls):
        fn = self.channel.unary_unary(
            "/tinykvpb.TinyKv/" + method,
            request_serializer=type(req).SerializeToString,
            response_deserializer=resp_cls.FromString,
        )
        return fn(req, timeout=10)

    def get(self, key, version):
        return self.call("KvGet", kv.GetRequest(key=key, version=version), kv.GetResponse)

    def prewrite(self, muts, primary, start, ttl=3000):
        m = [kv.Mutation(op=kv.Put if v is not None else kv.Del, key=k, value=v or b"") for k, v in muts]
        return self.call(
            "KvPrewrite",
            kv.PrewriteRequest(mutations=m, primary_lock=primary, start_version=start, lock_ttl=ttl),
            kv.PrewriteResponse,
        )

    def commit(self, keys, start, commit):
        return self.call(
            "KvCommit", kv.CommitRequest(keys=keys, start_version=start, commit_version=commit), kv.CommitResponse
        )

    def rollback(self, keys, start):
        return self.call("KvBatchRollback", kv.BatchRollbackRequest(keys=keys, start_version=start), kv.BatchRollbackResponse)

    def check_status(self, primary, lock_ts, current_ts):
        return self.call(
            "KvCheckTxnStatus",
            kv.CheckTxnStatusRequest(primary_key=primary, lock_ts=lock_ts, current_ts=current_ts),
            kv.CheckTxnStatusResponse,
        )

    def resolve(self, start, commit):
        return self.call("KvResolveLock", kv.ResolveLockRequest(start_version=start, commit_version=commit), kv.ResolveLockResponse)

    def scan(self, start_key, limit, version):
        return self.call("KvScan", kv.ScanRequest(start_key=start_key, limit=limit, version=version), kv.ScanResponse)

    def resolve_if_locked(self, err):
        """Cleans up after a lock whose owner is gone (expired TTL) or finished."""
        lock = err.locked
        st = self.check_status(lock.primary_lock, lock.lock_version, clock.next())
        if st.lock_ttl == 0:
            self.resolve(lock.lock_version, st.commit_version)


def run_txn(store, body):
    """Runs body(read) -> writes dict, retrying on conflicts and locks. Returns the commit ts."""
    while True:
        start = clock.next()
        reads = {}

        def read(key):
            while True:
                r = store.get(key, start)
                if r.HasField("error") and r.error.HasField("locked"):
                    store.resolve_if_locked(r.error)
                    time.sleep(0.002)
                    continue
                reads[key] = None if r.not_found else r.value
                return reads[key]

        writes = body(read)
        keys = sorted(writes)
        primary = keys[0]
        pw = store.prewrite([(k, writes[k]) for k in keys], primary, start)
        if pw.errors:
            store.rollback(keys, start)
            for e in pw.errors:
                if e.HasField("locked"):
                    store.resolve_if_locked(e)
            time.sleep(0.001)
            continue
        commit = clock.next()
        cr = store.commit([primary], start, commit)
        if cr.HasField("error"):
            store.rollback(keys, start)
            continue
        store.commit(keys[1:], start, commit)
        return commit


def generate_protos(outdir):
    global kv
    protos = sorted("proto/" + f for f in os.listdir(os.path.join(REPO, "proto")) if f.endswith(".proto"))
    subprocess.run(["protoc", "--python_out=" + outdir, "--proto_path=proto"] + protos, cwd=REPO, check=True)
    sys.path.insert(0, outdir)
    import kvrpcpb_pb2

    kv = kvrpcpb_pb2


def main():
    tmp = tempfile.mkdtemp(prefix="tinykv-txn-")
    os.mkdir(os.path.join(tmp, "gen"))
    generate_protos(os.path.join(tmp, "gen"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [os.path.join(BINDIR, "tinykv-server"), "--standalone", "--addr", "127.0.0.1:%d" % port,
         "--data-dir", os.path.join(tmp, "data"), "--log-level", "warn",
         "--status-addr", "127.0.0.1:0"],
        stderr=open(os.path.join(tmp, "server.log"), "wb"),
    )
    store = Store("127.0.0.1:%d" % port)
    try:
        deadline = time.time() + 15
        while True:
            try:
                store.get(b"ready", clock.next())
                break
            except grpc.RpcError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

        # Commit, then read at versions before and after.
        t1 = clock.next()
        pw = store.prewrite([(b"a", b"1"), (b"b", b"2")], b"a", t1)
        check("prewrite_two_keys", not pw.errors)
        before = clock.next()
        c1 = clock.next()
        check("commit_primary", not store.commit([b"a"], t1, c1).HasField("error"))
        check("commit_secondary", not store.commit([b"b"], t1, c1).HasField("error"))
        check("read_after_commit_sees_value", store.get(b"a", clock.next()).value == b"1")
        check("read_before_commit_sees_nothing", store.get(b"b", before).not_found)
        check("commit_is_idempotent", not store.commit([b"a"], t1, c1).HasField("error"))

        # A conflicting prewrite: a newer commit exists after our start.
        t2 = clock.next()
        t3 = clock.next()
        store.prewrite([(b"a", b"x")], b"a", t3)
        store.commit([b"a"], t3, clock.next())
        pw = store.prewrite([(b"a", b"y")], b"a", t2)
        check("write_conflict_detected", pw.errors and pw.errors[0].HasField("conflict"))

        # A live lock blocks readers; rollback removes it and blocks a late prewrite.
        t4 = clock.next()
        store.prewrite([(b"c", b"locked")], b"c", t4)
        r = store.get(b"c", clock.next())
        check("lock_blocks_reader", r.HasField("error") and r.error.HasField("locked"))
        check("rollback", not store.rollback([b"c"], t4).HasField("error"))
        check("rollback_unblocks_reader", store.get(b"c", clock.next()).not_found)
        pw = store.prewrite([(b"c", b"late")], b"c", t4)
        check("prewrite_after_rollback_fails", len(pw.errors) > 0)

        # An abandoned transaction with a short TTL is resolved by a reader.
        t5 = clock.next()
        store.prewrite([(b"d", b"orphan"), (b"e", b"orphan")], b"d", t5, ttl=1)
        time.sleep(0.01)
        st = store.check_status(b"d", t5, clock.next())
        check("expired_lock_rolled_back", st.action == kv.TTLExpireRollback)
        store.resolve(t5, 0)
        r = store.get(b"e", clock.next())
        check("resolve_lock_cleans_secondary", r.not_found and not r.HasField("error"))

        # Scan in key order at a version.
        run_txn(store, lambda read: {b"s1": b"1", b"s2": b"2", b"s3": b"3"})
        sc = store.scan(b"s", 2, clock.next())
        check("scan_order_and_limit", [p.key for p in sc.pairs] == [b"s1", b"s2"])
        sc = store.call(
            "KvScan",
            kv.ScanRequest(start_key=b"s", limit=10, version=clock.next(), key_only=True, end_key=b"s3"),
            kv.ScanResponse,
        )
        check(
            "scan_key_only_before_end_key",
            [(p.key, p.value) for p in sc.pairs] == [(b"s1", b""), (b"s2", b"")],
            repr([(p.key, p.value) for p in sc.pairs]),
        )

        # Racing read-modify-write increments: no lost update.
        store_c = [Store("127.0.0.1:%d" % port) for _ in range(4)]
        done = [0] * 4

        def incr(i):
            for _ in range(25):
                run_txn(store_c[i], lambda read: {b"counter": str(int(read(b"counter") or b"0") + 1).encode()})
                done[i] += 1

        # Transfers keep a + b == 100; snapshot readers must never see another sum.
        run_txn(store, lambda read: {b"acct-a": b"50", b"acct-b": b"50"})
        torn = []

        def transfer(i):
            for k in range(20):
                def body(read):
                    a, b = int(read(b"acct-a")), int(read(b"acct-b"))
                    amount = (k % 7) - 3
                    return {b"acct-a": str(a - amount).encode(), b"acct-b": str(b + amount).encode()}

                run_txn(store_c[i], body)

        def audit():
            for _ in range(40):
                holder = {}

                def body(read):
                    holder["sum"] = int(read(b"acct-a")) + int(read(b"acct-b"))
                    return {b"audit": b"x"}

                run_txn(store, body)
                if holder["sum"] != 100:
                    torn.append(holder["sum"])

        threads = [threading.Thread(target=incr, args=(i,)) for i in range(4)]
        threads += [threading.Thread(target=transfer, args=(i,)) for i in range(2)]
        threads.append(threading.Thread(target=audit))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        final = int(store.get(b"counter", clock.next()).value)
        check("concurrent_increments_lose_no_update", final == sum(done) == 100, "counter %d, committed %d" % (final, sum(done)))
        check("transfers_never_seen_torn", not torn, "sums %r" % torn[:5])
        a = int(store.get(b"acct-a", clock.next()).value)
        b = int(store.get(b"acct-b", clock.next()).value)
        check("transfers_keep_the_total", a + b == 100)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (results.count(True), results.count(False)))
    return 1 if results.count(False) else 0


if __name__ == "__main__":
    sys.exit(main())
