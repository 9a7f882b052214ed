# workloads.py — the chaos suite's clients, each recording a history for tests/chaos/checkers.py.
#
# Owns: its client threads or processes for one run, and their histories.
# Callers: tests/chaos/run.py. Never: retries an operation whose outcome is unknown (it is
# recorded "info"), or runs past its stop time plus one operation deadline.
#
#   register   raw RawPut/RawGet over stock grpcio, unique values, a few keys
#   bank       transfers and snapshot reads through the client library (chaos_driver bank)
#   monotonic  a transactional counter through the client library (chaos_driver monotonic)
#   set        files written through a tinykv-fuse mount; every close that returned 0 must survive

import json
import os
import random
import subprocess
import threading
import time

import grpc

import chaos_lib
from chaos_lib import pb

# Longer than a fault: the answer of a store paused or cut off while a write was in flight
# arrives before the client gives up on it (the NotLeader bug of issue 14 hid behind shorter ones).
RAW_OP_DEADLINE_S = 6.0
RAW_RPC_TIMEOUT_S = 4.5


def now_ms():
    return int(time.time() * 1000)


class RawClient:
    """Sends raw requests to the store believed to lead, following NotLeader hints."""

    def __init__(self, cluster):
        self.c = cluster
        self.channels = {}
        self.leader = 0

    def stub(self, i, method, resp_cls, req_cls):
        addr = self.c.addr(i)
        if addr not in self.channels:
            self.channels[addr] = grpc.insecure_channel(addr)
        return self.channels[addr].unary_unary("/tinykvpb.TinyKv/" + method,
                                               request_serializer=req_cls.SerializeToString,
                                               response_deserializer=resp_cls.FromString)

    def _hint(self, e):
        if e.HasField("not_leader") and e.not_leader.HasField("leader") and e.not_leader.leader.store_id:
            try:
                i = self.c.store_index_of_id(e.not_leader.leader.store_id)
                if i is not None:
                    self.leader = i
                    return
            except Exception:  # noqa: BLE001 - the scheduler may be down
                pass
        self.leader = (self.leader + 1) % self.c.n

    def call(self, method, req, resp_cls, is_write):
        """Returns ("ok", resp) | ("fail", why) | ("info", why). A read is retried on other stores
        until its deadline. A write gets one attempt (retried only if it was never sent), so a
        store's "not done" answer (every region error but `undetermined`) is recorded as such:
        a history with a read of that value then shows the lie."""
        deadline = time.time() + RAW_OP_DEADLINE_S
        why = "deadline"
        while time.time() < deadline:
            try:
                resp = self.stub(self.leader, method, resp_cls, type(req))(
                    req, timeout=min(RAW_RPC_TIMEOUT_S, max(0.05, deadline - time.time())))
            except grpc.RpcError as e:
                code = e.code()
                why = "rpc %s" % code.name
                self.leader = (self.leader + 1) % self.c.n
                unsent = code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in (e.details() or "")
                if is_write and not unsent:
                    # Sent, and no answer: it may have been applied.
                    return "info", why
                time.sleep(0.02)
                continue
            if resp.HasField("region_error"):
                e = resp.region_error
                if e.HasField("undetermined"):
                    return "info", "undetermined: " + e.message
                why = "region error: " + e.message
                self._hint(e)
                if is_write:
                    return "fail", why
                time.sleep(0.02)
                continue
            if resp.error:
                return "fail", resp.error
            return "ok", resp
        return "fail", why

    def close(self):
        for ch in self.channels.values():
            ch.close()


class Register:
    name = "register"

    def __init__(self, cluster, rng, keys=4, threads=4):
        self.c = cluster
        self.rng = rng
        self.keys = [b"reg/%d" % i for i in range(keys)]
        self.threads = threads
        self.history = []
        self.mu = threading.Lock()
        self.ths = []

    def _worker(self, p, stop_at, seed):
        rng = random.Random(seed)
        cl = RawClient(self.c)
        seq = 0
        try:
            while time.time() < stop_at:
                key = rng.choice(self.keys)
                t0 = now_ms()
                if rng.random() < 0.5:
                    seq += 1
                    value = "%d-%d" % (p, seq)
                    req = pb["kv"].RawPutRequest(key=key, value=value.encode())
                    typ, why = cl.call("RawPut", req, pb["kv"].RawPutResponse, True)
                    op = {"p": p, "f": "write", "key": key.decode(), "value": value}
                    if typ != "ok":
                        op["err"] = why
                else:
                    typ, resp = cl.call("RawGet", pb["kv"].RawGetRequest(key=key), pb["kv"].RawGetResponse, False)
                    value = None
                    if typ == "ok" and not resp.not_found:
                        value = resp.value.decode()
                    op = {"p": p, "f": "read", "key": key.decode(), "value": value}
                op.update(t0=t0, t1=now_ms(), type=typ)
                with self.mu:
                    self.history.append(op)
        finally:
            cl.close()

    def start(self, stop_at):
        for p in range(self.threads):
            t = threading.Thread(target=self._worker, args=(p, stop_at, self.rng.random()), daemon=True)
            t.start()
            self.ths.append(t)

    def join(self):
        for t in self.ths:
            t.join(timeout=RAW_OP_DEADLINE_S + 30)
        return not any(t.is_alive() for t in self.ths)


class Driver:
    """bank or monotonic: the C driver, whose stdout is the history."""

    def __init__(self, cluster, rng, workload, threads=4, accounts=5):
        self.c = cluster
        self.name = workload
        self.seed = rng.randrange(1 << 30)
        self.threads = threads
        self.accounts = accounts
        self.proc = None
        self.history = []
        self.init_ok = True
        self.stderr = ""

    def start(self, stop_at):
        args = [os.path.join(chaos_lib.BUILD, "tests", "chaos", "chaos_driver"), self.name, "--pd", self.c.pd_addr,
                "--threads", str(self.threads), "--duration", "%.1f" % max(1.0, stop_at - time.time()),
                "--seed", str(self.seed), "--accounts", str(self.accounts)]
        # Files, not pipes: nobody reads a pipe until the end, and a full one would stall the driver.
        self.out_path = os.path.join(self.c.workdir, self.name + ".history")
        self.err_path = os.path.join(self.c.workdir, self.name + ".stderr")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err)

    def join(self):
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.stderr = "driver hung; killed\n"
        with open(self.err_path, errors="replace") as f:
            self.stderr += f.read()
        with open(self.out_path, errors="replace") as f:
            for line in f:
                op = json.loads(line)
                if op["f"] != "init":
                    self.history.append(op)
        return self.proc.returncode == 0


class FileSet:
    """Files through a tinykv-fuse mount: open(O_CREAT|O_TRUNC), write, close."""

    name = "set"

    def __init__(self, cluster, rng, workdir, threads=2, timeout_ms=3000):
        self.c = cluster
        self.rng = rng
        self.threads = threads
        self.path = os.path.join(workdir, "mnt")
        self.log = os.path.join(workdir, "fuse.log")
        self.timeout_ms = timeout_ms
        self.history = []
        self.mu = threading.Lock()
        self.ths = []
        self.proc = None

    def mount(self):
        os.makedirs(self.path, exist_ok=True)
        opts = "scheduler=%s,timeout=%d" % (self.c.pd_addr, self.timeout_ms)
        self.proc = chaos_lib.Proc("fuse", [os.path.join(chaos_lib.BINDIR, "tinykv-fuse"), "-f", "-o", opts,
                                            self.path], self.log)
        self.proc.start()
        return chaos_lib.wait_for(lambda: os.path.ismount(self.path), 15)

    def unmount(self):
        if os.path.ismount(self.path):
            r = subprocess.run(["fusermount3", "-u", self.path], capture_output=True, timeout=30)
            if r.returncode != 0:
                subprocess.run(["fusermount3", "-uz", self.path], capture_output=True, timeout=30)
        if self.proc and self.proc.proc:
            try:
                self.proc.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def _worker(self, p, stop_at, seed):
        rng = random.Random(seed)
        i = 0
        while time.time() < stop_at:
            i += 1
            name = "f-%d-%04d" % (p, i)
            content = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
            t0 = now_ms()
            typ, err = "ok", None
            fd = None
            try:
                fd = os.open(os.path.join(self.path, name), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
                n = os.write(fd, content)
                if n != len(content):
                    typ, err = "info", "short write %d" % n
            except OSError as e:
                typ, err = "info", "open/write: %s" % e.strerror
            if fd is not None:
                try:
                    os.close(fd)
                except OSError as e:
                    typ, err = "info", "close: %s" % e.strerror
            op = {"p": p, "f": "add", "name": name, "content": content, "t0": t0, "t1": now_ms(), "type": typ}
            if err:
                op["err"] = err
            with self.mu:
                self.history.append(op)

    def start(self, stop_at):
        for p in range(self.threads):
            t = threading.Thread(target=self._worker, args=(p, stop_at, self.rng.random()), daemon=True)
            t.start()
            self.ths.append(t)

    def join(self):
        for t in self.ths:
            t.join(timeout=60)
        return not any(t.is_alive() for t in self.ths)

    def final_contents(self):
        """Every file of the mount, read after healing (each read retried within 30 s)."""
        out = {}
        names = None
        deadline = time.time() + 30
        while names is None and time.time() < deadline:
            try:
                names = os.listdir(self.path)
            except OSError:
                time.sleep(0.5)
        for name in names or []:
            if not name.startswith("f-"):
                continue  # .snapshots and the like
            while time.time() < deadline:
                try:
                    with open(os.path.join(self.path, name), "rb") as f:
                        out[name] = f.read()
                    break
                except OSError:
                    time.sleep(0.5)
        return out


class TsoWatch:
    """Asks the scheduler for one timestamp every 20 ms (a fresh stream each time): timestamps
    must only go up, whatever happens to the scheduler's process or clock."""

    name = "tso"

    def __init__(self, cluster):
        self.c = cluster
        self.history = []
        self.th = None
        self.cluster_id = None

    def _one(self, ch):
        sched = pb["sched"]
        if self.cluster_id is None:
            members = ch.unary_unary("/schedulerpb.Scheduler/GetMembers",
                                     request_serializer=sched.GetMembersRequest.SerializeToString,
                                     response_deserializer=sched.GetMembersResponse.FromString)
            self.cluster_id = members(sched.GetMembersRequest(), timeout=1).header.cluster_id
        stream = ch.stream_stream("/schedulerpb.Scheduler/Tso",
                                  request_serializer=sched.TsoRequest.SerializeToString,
                                  response_deserializer=sched.TsoResponse.FromString)
        req = sched.TsoRequest(header=sched.RequestHeader(cluster_id=self.cluster_id), count=1)
        resp = next(iter(stream(iter([req]), timeout=1)))
        if resp.header.HasField("error") and resp.header.error.type:
            raise RuntimeError("tso error")
        return resp.timestamp.physical << 18 | resp.timestamp.logical

    def _worker(self, stop_at):
        ch = grpc.insecure_channel(self.c.pd_addr)
        try:
            while time.time() < stop_at:
                t0 = now_ms()
                try:
                    ts = self._one(ch)
                    op = {"p": 0, "f": "read", "value": ts, "t0": t0, "t1": now_ms(), "type": "ok"}
                except Exception:  # noqa: BLE001 - no timestamp: nothing to check
                    op = {"p": 0, "f": "read", "value": None, "t0": t0, "t1": now_ms(), "type": "fail"}
                    time.sleep(0.05)
                self.history.append(op)
                time.sleep(0.02)
        finally:
            ch.close()

    def start(self, stop_at):
        self.th = threading.Thread(target=self._worker, args=(stop_at,), daemon=True)
        self.th.start()

    def join(self):
        self.th.join(timeout=30)
        return not self.th.is_alive()
