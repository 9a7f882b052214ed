#!/usr/bin/python3
# tinykv-fuse against a real cluster (a scheduler and three stores on loopback) through real mounts.
#
# Needs root and /dev/fuse (fails, never skips, without them). Starts the
# cluster in a temporary directory, mounts it twice (two tinykv-fuse
# processes), drives the mounts with ordinary tools (echo, cat, ls, mv, rm,
# dd, cp, cmp, truncate) and Python's os module, writes some keys through the
# transactional API directly (a tiny Percolator client over stock grpcio, to
# plant keys that need escaping), and finally kills the cluster to check that
# calls fail with EIO within the deadline instead of hanging.
#
# Environment: BINDIR (default bin/), FS_TEST_SEED (the random content of the
# binary file), FS_SOAK=1 (many more concurrent writers and rounds). Prints
# PASS/FAIL per scenario and "N passed, N failed".

import ctypes
import errno
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import grpc

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BINDIR = os.path.join(REPO, os.environ.get("BINDIR", "bin"))
FUSE_TIMEOUT_MS = 3000  # the mounts' per-operation deadline
CMD_TIMEOUT_S = 60  # no single tool invocation may take longer: a hang is a failure

pb = {}
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (" -- " + detail) if detail else ""), flush=True)


def scenario(fn):
    """Runs one scenario; an exception is its failure, not the end of the run."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report and go on
        check(fn.__name__, False, "%s: %s" % (type(e).__name__, e))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(cmd, cwd=None, timeout=CMD_TIMEOUT_S):
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, timeout=timeout)


def wait_for(cond, timeout_s, step=0.1):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def generate_protos(outdir):
    protos = sorted("proto/" + f for f in os.listdir(os.path.join(REPO, "proto")) if f.endswith(".proto"))
    subprocess.run(["protoc", "--python_out=" + outdir, "--proto_path=proto"] + protos, cwd=REPO, check=True)
    sys.path.insert(0, outdir)
    import kvrpcpb_pb2
    import schedulerpb_pb2

    pb["kv"] = kvrpcpb_pb2
    pb["sched"] = schedulerpb_pb2


class Proc:
    def __init__(self, args, log_path):
        self.args = args
        self.log_path = log_path
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "ab"))

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    def __init__(self, workdir):
        self.workdir = workdir
        self.pd_port = free_port()
        self.http_port = free_port()
        self.pd_addr = "127.0.0.1:%d" % self.pd_port
        self.pd = Proc(
            [os.path.join(BINDIR, "tinyscheduler-server"), "--addr", self.pd_addr,
             "--http-addr", "127.0.0.1:%d" % self.http_port, "--data-dir", os.path.join(workdir, "pd"),
             "--log-level", "warn"],
            os.path.join(workdir, "pd.log"))
        self.ports = [free_port() for _ in range(3)]
        self.stores = [
            Proc([os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % p,
                  "--data-dir", os.path.join(workdir, "store%d" % i), "--scheduler", self.pd_addr,
                  "--log-level", "warn", "--status-addr", "127.0.0.1:0"],
                 os.path.join(workdir, "store%d.log" % i))
            for i, p in enumerate(self.ports)
        ]
        self.channels = {}
        self.cluster_id = None

    def start(self):
        self.pd.start()
        for s in self.stores:
            s.start()
            time.sleep(0.3)  # the first store bootstraps; the others join

    def region(self):
        try:
            url = "http://127.0.0.1:%d/pd/api/v1/regions" % self.http_port
            with urllib.request.urlopen(url, timeout=3) as r:
                regions = json.loads(r.read())["regions"]
            return regions[0] if regions else None
        except Exception:
            return None

    def wait_replicated(self, timeout_s):
        def ok():
            r = self.region()
            return bool(r and len(r["peers"]) == 3 and r.get("leader", {}).get("id"))

        return wait_for(ok, timeout_s, 0.2)

    def channel(self, addr):
        if addr not in self.channels:
            self.channels[addr] = grpc.insecure_channel(addr)
        return self.channels[addr]

    def tso(self):
        sched = pb["sched"]
        ch = self.channel(self.pd_addr)
        if self.cluster_id is None:
            members = ch.unary_unary("/schedulerpb.Scheduler/GetMembers",
                                     request_serializer=sched.GetMembersRequest.SerializeToString,
                                     response_deserializer=sched.GetMembersResponse.FromString)
            self.cluster_id = members(sched.GetMembersRequest(), timeout=5).header.cluster_id
        stream = ch.stream_stream("/schedulerpb.Scheduler/Tso",
                                  request_serializer=sched.TsoRequest.SerializeToString,
                                  response_deserializer=sched.TsoResponse.FromString)
        req = sched.TsoRequest(header=sched.RequestHeader(cluster_id=self.cluster_id), count=1)
        resp = next(iter(stream(iter([req]), timeout=5)))
        return resp.timestamp.physical << 18 | resp.timestamp.logical

    def call_leader(self, method, req, resp_cls, timeout_s=20):
        """Sends a Kv* request to the stores until one (the leader) answers without a region error."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            for p in self.ports:
                stub = self.channel("127.0.0.1:%d" % p).unary_unary(
                    "/tinykvpb.TinyKv/" + method, request_serializer=type(req).SerializeToString,
                    response_deserializer=resp_cls.FromString)
                try:
                    resp = stub(req, timeout=3)
                except grpc.RpcError:
                    continue
                if not resp.HasField("region_error"):
                    return resp
            time.sleep(0.05)
        raise RuntimeError("no store answered %s" % method)

    def txn_put(self, kvs):
        """Writes kvs (bytes -> bytes) in one Percolator transaction (the cluster has one region)."""
        kv = pb["kv"]
        keys = sorted(kvs)
        start = self.tso()
        muts = [kv.Mutation(op=kv.Put, key=k, value=kvs[k]) for k in keys]
        resp = self.call_leader("KvPrewrite", kv.PrewriteRequest(mutations=muts, primary_lock=keys[0],
                                                                 start_version=start, lock_ttl=10000),
                                kv.PrewriteResponse)
        if len(resp.errors):
            raise RuntimeError("prewrite: %s" % resp.errors[0])
        commit = self.tso()
        resp = self.call_leader("KvCommit", kv.CommitRequest(start_version=start, keys=keys,
                                                             commit_version=commit), kv.CommitResponse)
        if resp.HasField("error"):
            raise RuntimeError("commit: %s" % resp.error)

    def kill_all(self):
        for s in self.stores:
            s.kill()
        self.pd.kill()


class Mount:
    """A foreground tinykv-fuse process serving `path`."""

    def __init__(self, cluster, path, log_path, extra_opts=""):
        self.path = path
        os.makedirs(path, exist_ok=True)
        opts = "scheduler=%s,timeout=%d%s" % (cluster.pd_addr, FUSE_TIMEOUT_MS, extra_opts)
        self.proc = Proc([os.path.join(BINDIR, "tinykv-fuse"), "-f", "-o", opts, path], log_path)

    def start(self):
        self.proc.start()
        return wait_for(lambda: os.path.ismount(self.path), 15)

    def unmount(self):
        """Unmounts and waits for the process; None if it was never started."""
        if self.proc.proc is None:
            return None
        if in_mount_table(self.path):
            r = subprocess.run(["fusermount3", "-u", self.path], capture_output=True, timeout=30)
            if r.returncode != 0:
                subprocess.run(["fusermount3", "-uz", self.path], capture_output=True, timeout=30)
        try:
            self.proc.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if in_mount_table(self.path):  # its server is gone: do not leave a dead mount behind
            subprocess.run(["fusermount3", "-uz", self.path], capture_output=True, timeout=30)
        return self.proc.proc.returncode


def in_mount_table(path):
    """Whether `path` is a mount point in /proc/mounts (os.path.ismount is False for a mount
    whose server died: stat fails with ENOTCONN)."""
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path for line in f if len(line.split()) > 1)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def errno_of(fn):
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def run_scenarios(c, m1, m2, tmp):
    a, b = m1.path, m2.path
    seed = int(os.environ.get("FS_TEST_SEED", str(random.randrange(1, 1 << 30))))
    print("seed %d (re-run with FS_TEST_SEED=%d)" % (seed, seed), flush=True)
    rnd = random.Random(seed)

    # echo into a new file and cat it back on the same mount.
    def echo_and_cat():
        r = sh("echo hello > %s/greeting && cat %s/greeting" % (a, a))
        check("echo_and_cat", r.returncode == 0 and r.stdout == b"hello\n", repr(r.stdout + r.stderr))

    scenario(echo_and_cat)

    # A file closed on one mount is read by the other (close-to-open).
    def second_mount_sees_closed_file():
        write(a + "/shared-note", b"from mount one")
        check("second_mount_sees_closed_file", read(b + "/shared-note") == b"from mount one")

    scenario(second_mount_sees_closed_file)

    # Nested and empty directories persist and show on the other mount.
    def nested_and_empty_directories():
        os.makedirs(a + "/d1/d2/d3")
        os.mkdir(a + "/empty")
        write(a + "/d1/d2/d3/leaf", b"leaf")
        ok = (os.path.isdir(b + "/empty") and os.listdir(b + "/empty") == []
              and os.listdir(b + "/d1") == ["d2"] and read(b + "/d1/d2/d3/leaf") == b"leaf")
        check("nested_and_empty_directories", ok, repr(os.listdir(b)))

    scenario(nested_and_empty_directories)

    # rmdir of a non-empty directory is ENOTEMPTY; missing names are ENOENT; an empty one goes away.
    def enotempty_and_enoent():
        e1 = errno_of(lambda: os.rmdir(a + "/d1"))
        e2 = errno_of(lambda: read(a + "/no-such-file"))
        e3 = errno_of(lambda: os.rmdir(a + "/no-such-dir"))
        e4 = errno_of(lambda: os.unlink(a + "/no-such-file"))
        os.rmdir(a + "/empty")
        gone = wait_for(lambda: not os.path.exists(b + "/empty"), 10)  # (the other mount caches 1 s)
        check("enotempty_and_enoent", (e1, e2, e3, e4) == (errno.ENOTEMPTY, errno.ENOENT, errno.ENOENT,
                                                            errno.ENOENT) and gone, repr((e1, e2, e3, e4, gone)))

    scenario(enotempty_and_enoent)

    # mv of a file and of a directory tree; RENAME_NOREPLACE refuses an existing target.
    def rename_file_and_directory():
        write(a + "/mv-src", b"moving")
        r = sh("mv %s/mv-src %s/mv-dst" % (a, a))
        ok_file = r.returncode == 0 and read(b + "/mv-dst") == b"moving" and not os.path.exists(b + "/mv-src")
        os.makedirs(a + "/tree/sub")
        write(a + "/tree/x", b"x")
        write(a + "/tree/sub/y", b"y")
        r2 = sh("mv %s/tree %s/moved-tree" % (a, a))
        ok_dir = (r2.returncode == 0 and not os.path.exists(b + "/tree")
                  and read(b + "/moved-tree/x") == b"x" and read(b + "/moved-tree/sub/y") == b"y")
        write(a + "/nr-1", b"one")
        write(a + "/nr-2", b"two")
        libc = ctypes.CDLL(None, use_errno=True)
        rc = libc.renameat2(-100, (a + "/nr-1").encode(), -100, (a + "/nr-2").encode(), 1)  # NOREPLACE
        err = ctypes.get_errno()
        ok_nr = rc == -1 and err == errno.EEXIST and read(a + "/nr-2") == b"two" and read(a + "/nr-1") == b"one"
        # Over the documented limit (1000 keys), a directory rename is EXDEV and changes nothing.
        c.txn_put({b"huge/k%04d" % i: b"v" for i in range(1001)})
        # (written beside the mounts: the first one's listing of / may hide it for up to 1 s)
        wait_for(lambda: os.path.isdir(a + "/huge"), 10)
        rc = libc.renameat2(-100, (a + "/huge").encode(), -100, (a + "/huge2").encode(), 0)
        err_big = ctypes.get_errno()
        ok_limit = rc == -1 and err_big == errno.EXDEV and len(os.listdir(b + "/huge")) == 1001 \
            and not os.path.exists(b + "/huge2")
        # Replacing an existing file swaps the content whole.
        write(a + "/rep-old", b"new content")
        write(a + "/rep-target", b"old content")
        r3 = sh("mv -f %s/rep-old %s/rep-target" % (a, a))
        ok_replace = r3.returncode == 0 and read(b + "/rep-target") == b"new content" \
            and not os.path.exists(b + "/rep-old")
        check("rename_file_and_directory", ok_file and ok_dir and ok_nr and ok_limit and ok_replace,
              repr((ok_file, ok_dir, ok_nr, ok_limit, ok_replace, r.stderr, r2.stderr, err, err_big)))

    scenario(rename_file_and_directory)

    # A 1 MiB binary file written with cp reads back identical on the other mount (cmp).
    def one_mib_binary_round_trip():
        src = os.path.join(tmp, "blob")
        write(src, bytes(rnd.getrandbits(8) for _ in range(1 << 20)))
        r = sh("cp %s %s/blob && cmp %s %s/blob" % (src, a, src, b))
        check("one_mib_binary_round_trip", r.returncode == 0 and os.path.getsize(b + "/blob") == 1 << 20,
              repr(r.stderr))

    scenario(one_mib_binary_round_trip)

    # >> appends to what is there.
    def append():
        r = sh("echo one > %s/log && echo two >> %s/log && echo three >> %s/log" % (a, a, a))
        check("append", r.returncode == 0 and read(b + "/log") == b"one\ntwo\nthree\n", repr(read(b + "/log")))

    scenario(append)

    # truncate shrinks and grows (with zeros).
    def truncate():
        write(a + "/trunc", b"0123456789")
        r1 = sh("truncate -s 4 %s/trunc" % a)
        v1 = read(b + "/trunc")
        r2 = sh("truncate -s 6 %s/trunc" % a)
        v2 = read(b + "/trunc")
        with open(a + "/trunc", "r+b") as f:
            f.truncate(2)
        v3 = read(b + "/trunc")
        ok = r1.returncode == 0 and r2.returncode == 0 and v1 == b"0123" and v2 == b"0123\0\0" and v3 == b"01"
        check("truncate", ok, repr((v1, v2, v3)))

    scenario(truncate)

    # dd conv=notrunc seek= writes in the middle and past the end of a file.
    def write_at_offset():
        write(a + "/dd", b"aaaaaaaaaa")
        r1 = sh("printf XY | dd of=%s/dd bs=1 seek=3 conv=notrunc status=none" % a)
        r2 = sh("printf Z | dd of=%s/dd bs=1 seek=12 conv=notrunc status=none" % a)
        v = read(b + "/dd")
        check("write_at_offset", r1.returncode == 0 and r2.returncode == 0 and v == b"aaaXYaaaaa\0\0Z", repr(v))

    scenario(write_at_offset)

    # rm deletes the key: the other mount no longer sees the file.
    def unlink():
        write(a + "/doomed", b"bye")
        r = sh("rm %s/doomed" % a)
        check("unlink", r.returncode == 0 and errno_of(lambda: read(b + "/doomed")) == errno.ENOENT)

    scenario(unlink)

    # ls of a small directory lists only its own entries while a sibling holds 500 keys.
    def listing_beside_many_keys():
        c.txn_put({b"big/f%03d" % i: b"%d" % i for i in range(500)})
        os.makedirs(a + "/small/sub")
        for n in ("a", "b", "c"):
            write(a + "/small/" + n, n.encode())
        t0 = time.time()
        small = sorted(os.listdir(b + "/small"))
        top = os.listdir(b)
        took = time.time() - t0
        big = os.listdir(b + "/big")
        print("  listing small dir and root beside 500 keys: %.3f s" % took, flush=True)
        ok = (small == ["a", "b", "c", "sub"] and len(big) == 500 and top.count("big") == 1
              and "f000" not in top and "small" in top)
        check("listing_beside_many_keys", ok, repr((small, len(big), sorted(top))))

    scenario(listing_beside_many_keys)

    # Odd names round-trip, and keys written through the API that need escaping show up escaped.
    def odd_keys_round_trip():
        names = {"100% sure": b"100% sure", "a b  c": b"a b  c", "\u00fcn\u00ef\u00e7\u00f8d\u00e9": "\u00fcn\u00ef\u00e7\u00f8d\u00e9".encode(),
                 "%2541": b"%41", "%2E%2E": b"..", "%2E": b".", ".snapshots": b".snapshots"}
        os.mkdir(a + "/odd")
        bad = []
        for name, key_tail in names.items():
            write(a + "/odd/" + name, b"v:" + name.encode())
            got = os.getxattr(b + "/odd/" + name, "user.tinykv.key")
            if got != b"odd/" + key_tail or read(b + "/odd/" + name) != b"v:" + name.encode():
                bad.append((name, got))
        # The root's reserved name needs escaping; nested it does not.
        write(a + "/%2Esnapshots", b"top")
        if os.getxattr(b + "/%2Esnapshots", "user.tinykv.key") != b".snapshots":
            bad.append(("top .snapshots",))
        if sorted(os.listdir(b + "/odd")) != sorted(names):
            bad.append(("listing", sorted(os.listdir(b + "/odd"))))
        # A non-canonical name cannot be created.
        if errno_of(lambda: write(a + "/odd/%41", b"x")) != errno.EINVAL:
            bad.append("non-canonical created")
        c.txn_put({b"api/nul\x00byte": b"1", b"api//empty-component": b"2", b"api/.": b"3",
                   b"api/dir-marker/": b"", b"api/%41": b"5"})
        listing = sorted(os.listdir(b + "/api"))
        want = sorted(["nul%00byte", "%", "%2E", "dir-marker", "%2541"])
        if listing != want:
            bad.append(("api listing", listing))
        if read(b + "/api/nul%00byte") != b"1" or read(b + "/api/%/empty-component") != b"2":
            bad.append("api values")
        if not os.path.isdir(b + "/api/dir-marker") or os.listdir(b + "/api/dir-marker") != []:
            bad.append("api marker")
        check("odd_keys_round_trip", not bad, repr(bad))

    scenario(odd_keys_round_trip)

    # Writers on different files and on one shared file: every file ends as one writer's whole content.
    def concurrent_writers():
        soak = os.environ.get("FS_SOAK") == "1"
        n_writers, rounds, size = (8, 50, 256 * 1024) if soak else (4, 6, 48 * 1024)
        contents = [bytes([65 + w]) * size + b"writer %d end" % w for w in range(n_writers)]
        srcs = []
        for w in range(n_writers):
            srcs.append(os.path.join(tmp, "w%d" % w))
            write(srcs[-1], contents[w])
        write(a + "/contended", contents[0])
        torn = []
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                try:
                    v = read(b + "/contended")
                except OSError:
                    continue
                if v not in contents:
                    torn.append(len(v))

        rt = threading.Thread(target=reader)
        rt.start()
        procs = []
        for w in range(n_writers):
            mnt = a if w % 2 == 0 else b
            loop = "for i in $(seq %d); do cp %s %s/own-%d; cp %s %s/contended || echo conflict >&2; done" % (
                rounds, srcs[w], mnt, w, srcs[w], mnt)
            procs.append(subprocess.Popen(["bash", "-c", loop], stderr=subprocess.PIPE))
        errs = []
        for p in procs:
            _, err = p.communicate(timeout=1200 if soak else 120)
            errs.append(err.decode(errors="replace").strip())
        stop.set()
        rt.join()
        own_ok = all(read(b + "/own-%d" % w) == contents[w] for w in range(n_writers))
        final = read(a + "/contended")
        conflicts = sum(e.count("conflict") for e in errs)
        print("  shared-file copies refused with a conflict: %d of %d" % (conflicts, n_writers * rounds), flush=True)
        check("concurrent_writers", own_ok and final in contents and not torn,
              repr((own_ok, len(final), torn[:3], errs)))

    scenario(concurrent_writers)

    # A read-modify-write open (no O_TRUNC) whose file another mount changed meanwhile fails its
    # close with EAGAIN and writes nothing; the other writer's whole version stays.
    def stale_update_fails_with_eagain():
        write(a + "/rmw", b"base")
        fd = os.open(a + "/rmw", os.O_RDWR)
        try:
            os.pwrite(fd, b"MINE", 0)
            write(b + "/rmw", b"theirs, whole")
        finally:
            e = errno_of(lambda: os.close(fd))
        fd2 = os.open(a + "/rmw", os.O_WRONLY | os.O_APPEND)
        os.write(fd2, b"+tail")
        os.close(fd2)  # no conflict this time: appended to the current version
        v = read(b + "/rmw")
        check("stale_update_fails_with_eagain", e == errno.EAGAIN and v == b"theirs, whole+tail", repr((e, v)))

    scenario(stale_update_fails_with_eagain)

    # An open file follows a rename (its close writes the new name) and an unlinked one writes nothing.
    def open_file_follows_rename_and_unlink():
        fd = os.open(a + "/ren-open", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"written after open")
        os.rename(a + "/ren-open", a + "/ren-moved")
        os.close(fd)
        fd = os.open(a + "/unl-open", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"never")
        os.unlink(a + "/unl-open")
        e = errno_of(lambda: os.close(fd))
        ok = (read(b + "/ren-moved") == b"written after open" and not os.path.exists(b + "/ren-open")
              and e == 0 and not os.path.exists(b + "/unl-open"))
        check("open_file_follows_rename_and_unlink", ok,
              repr((read(b + "/ren-moved"), os.path.exists(b + "/ren-open"), e, os.path.exists(b + "/unl-open"))))

    scenario(open_file_follows_rename_and_unlink)

    # user.tinykv.* attributes name the key, its region, the leader store and its commit ts.
    def xattrs():
        write(a + "/attr", b"x")
        names = set(os.listxattr(b + "/attr"))
        want = {"user.tinykv.key", "user.tinykv.region_id", "user.tinykv.leader_store",
                "user.tinykv.read_ts", "user.tinykv.commit_ts"}
        region = int(os.getxattr(b + "/attr", "user.tinykv.region_id"))
        leader = int(os.getxattr(b + "/attr", "user.tinykv.leader_store"))
        commit_ts = int(os.getxattr(b + "/attr", "user.tinykv.commit_ts"))
        read_ts = int(os.getxattr(b + "/attr", "user.tinykv.read_ts"))
        r = c.region()
        # (The leader may move between the two looks; it is always one of the region's stores.)
        ok = (names == want and region == r["id"] and leader in [p["store_id"] for p in r["peers"]]
              and 0 < commit_ts < read_ts and errno_of(lambda: os.setxattr(b + "/attr", "user.x", b"1")) in
              (errno.ENOTSUP, errno.EOPNOTSUPP))
        check("xattrs", ok, repr((names, region, leader, commit_ts, read_ts, r)))

    scenario(xattrs)

    # The snapshot view at a past timestamp shows the old version after an overwrite, read-only.
    def time_travel_view():
        write(a + "/tt", b"version one")
        ts = int(os.getxattr(a + "/tt", "user.tinykv.read_ts"))
        commit_ts = int(os.getxattr(a + "/tt", "user.tinykv.commit_ts"))
        write(a + "/tt", b"version two")
        old = read("%s/.snapshots/%d/tt" % (b, ts))
        also = read("%s/.snapshots/%d/tt" % (b, commit_ts))
        try:  # just before the commit: nothing, or the empty file create made
            before = read("%s/.snapshots/%d/tt" % (b, commit_ts - 1))
        except FileNotFoundError:
            before = b""
        ro = errno_of(lambda: write("%s/.snapshots/%d/new" % (b, ts), b"x"))
        listed = "tt" in os.listdir("%s/.snapshots/%d" % (b, ts))
        future = errno_of(lambda: os.listdir("%s/.snapshots/%d" % (b, ts + (3600000 << 18))))
        ok = (read(b + "/tt") == b"version two" and old == b"version one" and also == b"version one"
              and before == b"" and ro == errno.EROFS and listed and future == errno.ENOENT)
        check("time_travel_view", ok, repr((old, also, before, ro, listed, future)))

    scenario(time_travel_view)

    # The errno of each unsupported call: link EPERM, RENAME_EXCHANGE EINVAL, setxattr ENOTSUP,
    # the reserved metadata name and libfuse's hidden names EINVAL; files past 16 TiB EFBIG, an
    # over-long key ENAMETOOLONG.
    def unsupported_calls_and_limits():
        libc = ctypes.CDLL(None, use_errno=True)
        e_link = errno_of(lambda: os.link(a + "/greeting", a + "/hard"))
        write(a + "/xa", b"1")
        write(a + "/xb", b"2")
        rc = libc.renameat2(-100, (a + "/xa").encode(), -100, (a + "/xb").encode(), 2)  # EXCHANGE
        e_exchange = ctypes.get_errno() if rc == -1 else 0
        e_xattr = errno_of(lambda: os.setxattr(a + "/xa", "user.x", b"1"))
        e_reserved = errno_of(lambda: write(a + "/%00m", b"x"))
        e_hidden = errno_of(lambda: write(a + "/.fuse_hidden0000", b"x"))
        # Files go to 16 TiB (chunks past 1 MiB; test_fs_tools.py has the large-file scenarios).
        write(a + "/too-big", b"z")
        e_big = errno_of(lambda: os.truncate(a + "/too-big", (16 << 40) + 1))

        def pwrite_past_limit():
            fd = os.open(a + "/too-big", os.O_WRONLY)
            try:
                os.pwrite(fd, b"z", 16 << 40)
            finally:
                os.close(fd)

        e_big_write = errno_of(pwrite_past_limit)
        # A key over 8 KiB: directories nested through dir fds (paths would hit PATH_MAX first).
        fd, e_long, depth = os.open(a, os.O_RDONLY), 0, 0
        try:
            while depth < 60 and not e_long:
                name = "n%03d" % depth + "x" * 196
                e_long = errno_of(lambda: os.mkdir(name, dir_fd=fd))
                if not e_long:
                    nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
                    os.close(fd)
                    fd, depth = nfd, depth + 1
        finally:
            os.close(fd)
        got = (e_link, e_exchange, e_xattr in (errno.ENOTSUP, errno.EOPNOTSUPP), e_reserved, e_hidden,
               e_big, e_big_write, e_long)
        want = (errno.EPERM, errno.EINVAL, True, errno.EINVAL, errno.EINVAL, errno.EFBIG, errno.EFBIG,
                errno.ENAMETOOLONG)
        check("unsupported_calls_and_limits", got == want and 38 <= depth <= 41, repr((got, depth)))

    scenario(unsupported_calls_and_limits)

    # The /etc/fstab path: mount.fuse3 with type fuse.tinykv (as mount(8) calls it; it runs "tinykv
    # SOURCE MNT -o OPTS" found on PATH) and ro: reads work, writes are EROFS; fusermount3 -u unmounts.
    def fstab_form_read_only():
        mnt = os.path.join(tmp, "mnt-ro")
        os.makedirs(mnt)
        bindir = os.path.join(tmp, "fstab-bin")
        os.makedirs(bindir)
        os.symlink(os.path.join(BINDIR, "tinykv-fuse"), os.path.join(bindir, "tinykv"))
        env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
        r = subprocess.run(["mount.fuse3", c.pd_addr, mnt, "-t", "fuse.tinykv", "-o", "ro,timeout=3000"],
                           capture_output=True, timeout=30, env=env)
        mounted = r.returncode == 0 and os.path.ismount(mnt)
        ok = False
        try:
            ok = mounted and read(mnt + "/greeting") == b"hello\n" and \
                errno_of(lambda: write(mnt + "/x", b"1")) == errno.EROFS and \
                errno_of(lambda: os.mkdir(mnt + "/d")) == errno.EROFS
        finally:
            u = subprocess.run(["fusermount3", "-u", mnt], capture_output=True, timeout=30)
        check("fstab_form_read_only", ok and u.returncode == 0 and not os.path.ismount(mnt),
              repr((r.returncode, r.stderr, u.stderr)))

    scenario(fstab_form_read_only)

    # Mounting against a scheduler that does not answer fails fast with a clear message.
    def unreachable_scheduler_fails_fast():
        mnt = os.path.join(tmp, "mnt-dead")
        os.makedirs(mnt)
        t0 = time.time()
        r = subprocess.run([os.path.join(BINDIR, "tinykv-fuse"), "-o", "scheduler=127.0.0.1:%d" % free_port(),
                            mnt], capture_output=True, timeout=30)
        took = time.time() - t0
        ok = r.returncode != 0 and b"cannot reach the scheduler" in r.stderr and not os.path.ismount(mnt)
        check("unreachable_scheduler_fails_fast", ok and took < 15, "%.1f s %r" % (took, r.stderr))

    scenario(unreachable_scheduler_fails_fast)


def leader_loss_scenario(c, m1, m2):
    a, b = m1.path, m2.path

    # SIGKILL of the store leading the region: after a bounded wait the mounts serve reads and
    # writes again, and what was committed before is all there.
    def leader_store_killed():
        before = {"greeting": b"hello\n", "blob-check": os.urandom(4096)}
        write(a + "/blob-check", before["blob-check"])
        r = c.region()
        url = "http://127.0.0.1:%d/pd/api/v1/stores" % c.http_port
        with urllib.request.urlopen(url, timeout=3) as resp:
            stores = json.loads(resp.read())["stores"]
        addr = [s["store"]["address"] for s in stores if s["store"]["id"] == r["leader"]["store_id"]][0]
        victim = c.ports.index(int(addr.rsplit(":", 1)[1]))
        c.stores[victim].kill()
        t0 = time.time()
        served = False
        while time.time() - t0 < 30 and not served:
            try:
                write(a + "/after-leader-loss", b"still here")
                served = read(b + "/after-leader-loss") == b"still here"
            except OSError:
                pass  # EIO while a new leader is elected
        took = time.time() - t0
        kept = all(read(b + "/" + k) == v for k, v in before.items())
        print("  served again %.1f s after the leader store was killed" % took, flush=True)
        check("leader_store_killed", served and kept, "%.1f s served=%s kept=%s" % (took, served, kept))

    scenario(leader_store_killed)


def cluster_down_scenario(c, m1):
    a = m1.path

    # With every store and the scheduler killed, calls fail (EIO) within the deadline instead of hanging.
    def cluster_stopped_gives_eio():
        write(a + "/before-kill", b"x")
        c.kill_all()
        t0 = time.time()
        r = sh("timeout 30 cat %s/before-kill" % a, timeout=40)
        took = time.time() - t0
        e = errno_of(lambda: write(a + "/after-kill", b"y"))
        ok = r.returncode not in (0, 124) and b"Input/output error" in r.stderr and e == errno.EIO
        check("cluster_stopped_gives_eio", ok and took < 30,
              "%.1f s rc=%d %r write errno %s" % (took, r.returncode, r.stderr, e))

    scenario(cluster_stopped_gives_eio)


def main():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        check("fuse_available", False, "needs root and /dev/fuse")
        print("%d passed, %d failed" % (results.count(True), results.count(False)))
        return 1
    tmp = tempfile.mkdtemp(prefix="tinykv-fs-")
    gen = os.path.join(tmp, "gen")
    os.mkdir(gen)
    generate_protos(gen)
    c = Cluster(tmp)
    m1 = Mount(c, os.path.join(tmp, "mnt1"), os.path.join(tmp, "fuse1.log"))
    # The second mount, which checks what the first one wrote, asks the cluster for every
    # missing name: a file closed on one mount is then there at once on the other (close-to-open
    # for new names too). The first keeps the default listing cache (test_fs_tools.py tests it
    # across mounts).
    m2 = Mount(c, os.path.join(tmp, "mnt2"), os.path.join(tmp, "fuse2.log"), ",lookupcache=positive")
    t0 = time.time()
    try:
        c.start()
        up = c.wait_replicated(30)
        check("cluster_replicated_with_a_leader", up)
        if up:
            check("two_mounts", m1.start() and m2.start())
            run_scenarios(c, m1, m2, tmp)
            leader_loss_scenario(c, m1, m2)
            rc2 = m2.unmount()
            check("unmount", rc2 == 0 and not os.path.ismount(m2.path), "exit %s" % rc2)
            cluster_down_scenario(c, m1)
            rc1 = m1.unmount()
            check("unmount_with_cluster_down", not in_mount_table(m1.path), "exit %s" % rc1)
    finally:
        for m in (m1, m2):
            try:
                m.unmount()
            except Exception:
                pass
        c.kill_all()
        for ch in c.channels.values():
            ch.close()
        if results.count(False):
            for name in ("pd.log", "store0.log", "fuse1.log", "fuse2.log"):
                path = os.path.join(tmp, name)
                if os.path.exists(path):
                    print("---- %s (tail)" % name)
                    with open(path, errors="replace") as f:
                        print("".join(f.readlines()[-15:]))
        for m in ("mnt1", "mnt2", "mnt-ro", "mnt-dead"):
            if in_mount_table(os.path.join(tmp, m)):
                subprocess.run(["fusermount3", "-uz", os.path.join(tmp, m)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print("fs tests took %.1f s" % (time.time() - t0))
    print("%d passed, %d failed" % (results.count(True), results.count(False)))
    return 1 if results.count(False) else 0


if __name__ == "__main__":
    sys.exit(main())
