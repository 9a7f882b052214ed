#!/usr/bin/python3
# Drives a standalone tinykv-server's raw KV API with Debian's stock grpcio and protobuf.
#
# The point is wire compatibility: nothing here comes from our own code. The
# request/response classes are generated at run time from proto/*.proto by the
# stock protoc into a temporary directory, and methods are called by their gRPC
# path without generated stubs, exactly as any third-party client could.
#
# Environment:
#   BINDIR             where tinykv-server lives (default bin/, relative to the repo root)
#   TINYKV_TEST_SEED   seed for the shuffled insertion orders (printed at start)
#
# Prints one PASS/FAIL line per check, then "N passed, N failed"; exits 1 if any failed.

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import grpc

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))

KEY_MAX = 8 * 1024
VALUE_MAX = 8 * 1024 * 1024
MSG_MAX = 16 * 1024 * 1024
CFS = ["default", "lock", "write"]
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 10.0

kvrpcpb = None  # the generated module, imported by generate_protos()


def generate_protos(outdir):
    """Compile proto/*.proto with the stock protoc into outdir and import kvrpcpb_pb2."""
    global kvrpcpb
    protos = sorted(
        os.path.join("proto", f) for f in os.listdir(os.path.join(REPO, "proto")) if f.endswith(".proto")
    )
    subprocess.run(["protoc", "--python_out=" + outdir, "--proto_path=proto"] + protos, cwd=REPO, check=True)
    sys.path.insert(0, outdir)
    import kvrpcpb_pb2

    kvrpcpb = kvrpcpb_pb2


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One tinykv-server process in standalone mode on a fixed port and data dir."""

    def __init__(self, binary, port, data_dir, log_path):
        self.binary = binary
        self.port = port
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--standalone",
                    "--addr",
                    "127.0.0.1:%d" % self.port,
                    "--data-dir",
                    self.data_dir,
                    "--log-level",
                    "warn",
                    "--status-addr",
                    "127.0.0.1:0",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        finally:
            log.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join("    | " + line for line in lines[-n:])
        except OSError:
            return "    | (no log)"


class Client:
    """Stub-less calls to /tinykvpb.TinyKv/Raw* over one channel."""

    def __init__(self, port):
        self.channel = grpc.insecure_channel(
            "127.0.0.1:%d" % port,
            options=[
                ("grpc.max_send_message_length", MSG_MAX),
                ("grpc.max_receive_message_length", MSG_MAX),
                # Own connections, not shared with other channels of this process.
                ("grpc.use_local_subchannel_pool", 1),
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 500),
            ],
        )

    def method(self, name, resp_cls):
        return self.channel.unary_unary(
            "/tinykvpb.TinyKv/" + name,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=resp_cls.FromString,
        )

    def raw_method(self, path):
        """A method sending and receiving undecoded bytes."""
        return self.channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)

    def get(self, key, cf="", timeout=CALL_TIMEOUT_S, wait_for_ready=None):
        req = kvrpcpb.RawGetRequest(key=key, cf=cf)
        return self.method("RawGet", kvrpcpb.RawGetResponse)(req, timeout=timeout, wait_for_ready=wait_for_ready)

    def put(self, key, value, cf=""):
        req = kvrpcpb.RawPutRequest(key=key, value=value, cf=cf)
        return self.method("RawPut", kvrpcpb.RawPutResponse)(req, timeout=CALL_TIMEOUT_S)

    def delete(self, key, cf=""):
        req = kvrpcpb.RawDeleteRequest(key=key, cf=cf)
        return self.method("RawDelete", kvrpcpb.RawDeleteResponse)(req, timeout=CALL_TIMEOUT_S)

    def scan(self, start_key, limit, cf=""):
        req = kvrpcpb.RawScanRequest(start_key=start_key, limit=limit, cf=cf)
        return self.method("RawScan", kvrpcpb.RawScanResponse)(req, timeout=CALL_TIMEOUT_S)

    def close(self):
        self.channel.close()


class Model:
    """What each CF must hold, updated only by writes the server acknowledged."""

    def __init__(self):
        self.data = {cf: {} for cf in CFS}
        # Keys deleted (and not written since) per CF: they must stay absent.
        self.deleted = {cf: set() for cf in CFS}

    @staticmethod
    def norm(cf):
        return cf or "default"

    def put(self, cf, key, value):
        self.data[self.norm(cf)][key] = value
        self.deleted[self.norm(cf)].discard(key)

    def delete(self, cf, key):
        self.data[self.norm(cf)].pop(key, None)
        self.deleted[self.norm(cf)].add(key)

    def sorted_items(self, cf):
        return sorted(self.data[self.norm(cf)].items())


class Failure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failure(what)


def short(b, n=40):
    r = repr(b)
    return r if len(r) <= n else r[:n] + "...(%d bytes)" % len(b)


class Suite:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, scenario, fn):
        """Run fn; it fails by raising, and may return a note for the PASS line."""
        t0 = time.monotonic()
        try:
            note = fn()
        except Failure as e:
            self.failed += 1
            print("FAIL %s: %s -- %s" % (name, scenario, e), flush=True)
            return False
        except grpc.RpcError as e:
            self.failed += 1
            print("FAIL %s: %s -- gRPC %s: %s" % (name, scenario, e.code(), e.details()), flush=True)
            return False
        except Exception:
            self.failed += 1
            print("FAIL %s: %s -- exception:" % (name, scenario), flush=True)
            traceback.print_exc(file=sys.stdout)
            return False
        self.passed += 1
        extra = " (%s)" % note if note else ""
        print("PASS %s: %s%s [%.2f s]" % (name, scenario, extra, time.monotonic() - t0), flush=True)
        return True


# ---- helpers over the client that also keep the model in step ----


def put_ok(c, model, key, value, cf=""):
    r = c.put(key, value, cf)
    expect(not r.error, "RawPut(%s, cf=%r) error %r" % (short(key), cf, r.error))
    expect(not r.HasField("region_error"), "RawPut(%s) region_error %s" % (short(key), r.region_error))
    model.put(cf, key, value)


def delete_ok(c, model, key, cf=""):
    r = c.delete(key, cf)
    expect(not r.error, "RawDelete(%s, cf=%r) error %r" % (short(key), cf, r.error))
    expect(not r.HasField("region_error"), "RawDelete(%s) region_error %s" % (short(key), r.region_error))
    model.delete(cf, key)


def expect_value(c, key, value, cf=""):
    r = c.get(key, cf)
    expect(not r.error, "RawGet(%s, cf=%r) error %r" % (short(key), cf, r.error))
    expect(not r.not_found, "RawGet(%s, cf=%r) not_found, want %s" % (short(key), cf, short(value)))
    expect(r.value == value, "RawGet(%s, cf=%r) = %s, want %s" % (short(key), cf, short(r.value), short(value)))


def expect_absent(c, key, cf=""):
    r = c.get(key, cf)
    expect(not r.error, "RawGet(%s, cf=%r) error %r" % (short(key), cf, r.error))
    expect(r.not_found, "RawGet(%s, cf=%r) found %s, want not_found" % (short(key), cf, short(r.value)))
    expect(r.value == b"", "RawGet(%s, cf=%r) not_found but value %s" % (short(key), cf, short(r.value)))


def scan_pairs(c, start_key, limit, cf=""):
    r = c.scan(start_key, limit, cf)
    expect(not r.error, "RawScan(%s, %d, cf=%r) error %r" % (short(start_key), limit, cf, r.error))
    expect(not r.HasField("region_error"), "RawScan region_error %s" % r.region_error)
    for kv in r.kvs:
        expect(not kv.HasField("error"), "RawScan pair %s carries an error" % short(kv.key))
    return [(kv.key, kv.value) for kv in r.kvs]


def expect_cf_matches_model(c, model):
    for cf in CFS:
        got = scan_pairs(c, b"", 100000, cf)
        want = model.sorted_items(cf)
        if got != want:
            gk = [k for k, _ in got]
            wk = [k for k, _ in want]
            extra = [short(k) for k in gk if k not in model.data[cf]]
            missing = [short(k) for k in wk if k not in set(gk)]
            raise Failure(
                "cf %r holds %d pairs, model %d; unexpected %s; missing %s; (values and order compared too)"
                % (cf, len(got), len(want), extra[:5], missing[:5])
            )


def expect_status(fn, code, what):
    try:
        fn()
    except grpc.RpcError as e:
        expect(e.code() == code, "%s: status %s (%s), want %s" % (what, e.code(), e.details(), code))
        return
    raise Failure("%s: call succeeded, want status %s" % (what, code))


def wait_ready(server, port):
    """Poll RawGet with a short deadline until the server answers; False on timeout or exit.

    Each attempt uses a fresh channel: a channel whose first connect was refused
    sits in reconnect backoff and would fail fast for seconds after the server is up.
    """
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.alive():
            return False
        c = Client(port)
        try:
            c.get(b"readiness-probe", timeout=0.5, wait_for_ready=True)
            return True
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return True  # it answered, if oddly; the checks will judge the answer
        finally:
            c.close()
        time.sleep(0.05)
    return False


def stop_server(server):
    """SIGTERM, then wait up to STOP_TIMEOUT_S; returns the exit code or None if still running."""
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None


# ---- the checks ----


def run_checks(suite, server, port, rng):
    model = Model()
    c = Client(port)

    def cf_roundtrip(cf):
        def fn():
            prefix = b"rt/" + (cf or "empty").encode() + b"/"
            k1, k2 = prefix + b"a", prefix + b"b"
            expect_absent(c, k1, cf)
            put_ok(c, model, k1, b"one-" + prefix, cf)
            put_ok(c, model, k2, b"two-" + prefix, cf)
            expect_value(c, k1, b"one-" + prefix, cf)
            # Overwrite replaces the value.
            put_ok(c, model, k2, b"two-again-" + prefix, cf)
            expect_value(c, k2, b"two-again-" + prefix, cf)
            got = scan_pairs(c, prefix, 2, cf)
            expect(
                got == [(k1, b"one-" + prefix), (k2, b"two-again-" + prefix)],
                "RawScan(%r) = %s" % (prefix, [(short(k), short(v)) for k, v in got]),
            )
            delete_ok(c, model, k1, cf)
            expect_absent(c, k1, cf)
            expect_value(c, k2, b"two-again-" + prefix, cf)
            got = scan_pairs(c, prefix, 2, cf)
            expect(got[:1] == [(k2, b"two-again-" + prefix)], "RawScan after delete starts %s" % got[:1])

        return fn

    for cf in [""] + CFS:
        suite.check(
            "cf_roundtrip[%s]" % (cf or '""'),
            "put, overwrite, get, scan and delete work in CF %r" % cf,
            cf_roundtrip(cf),
        )

    def empty_cf_is_default():
        put_ok(c, model, b"alias/k", b"via-empty", "")
        expect_value(c, b"alias/k", b"via-empty", "default")
        put_ok(c, model, b"alias/k", b"via-default", "default")
        expect_value(c, b"alias/k", b"via-default", "")

    suite.check("empty_cf_is_default", 'cf "" and cf "default" name the same column family', empty_cf_is_default)

    def cf_isolation():
        for cf in CFS:
            key = b"iso/" + cf.encode()
            put_ok(c, model, key, b"only-in-" + cf.encode(), cf)
        for cf in CFS:
            key = b"iso/" + cf.encode()
            for other in CFS:
                if other == cf:
                    expect_value(c, key, b"only-in-" + cf.encode(), other)
                else:
                    expect_absent(c, key, other)
        # Same key in every CF with different values: each CF keeps its own.
        for cf in CFS:
            put_ok(c, model, b"iso/shared", b"shared-" + cf.encode(), cf)
        for cf in CFS:
            expect_value(c, b"iso/shared", b"shared-" + cf.encode(), cf)
        delete_ok(c, model, b"iso/shared", "lock")
        expect_absent(c, b"iso/shared", "lock")
        expect_value(c, b"iso/shared", b"shared-default", "default")
        expect_value(c, b"iso/shared", b"shared-write", "write")

    suite.check("cf_isolation", "a key written in one CF is not_found in the others", cf_isolation)

    def scan_order():
        keys = [b"scan/%02d" % i for i in range(10)]
        order = keys[:]
        rng.shuffle(order)
        for k in order:
            put_ok(c, model, k, b"v-" + k, "write")
        got = scan_pairs(c, b"scan/03", 4, "write")
        want = [(k, b"v-" + k) for k in keys[3:7]]
        expect(got == want, "RawScan(scan/03, 4) = %s, want %s" % ([k for k, _ in got], [k for k, _ in want]))
        # A start key between stored keys starts at the next one.
        got = scan_pairs(c, b"scan/035", 2, "write")
        want = [(k, b"v-" + k) for k in keys[4:6]]
        expect(got == want, "RawScan(scan/035, 2) = %s" % [k for k, _ in got])

    suite.check(
        "scan_order",
        "RawScan returns keys in ascending order from start_key inclusive, inserted in shuffled order",
        scan_order,
    )

    def scan_limit():
        # Keys under \xff\xff\xff sort after everything else this test writes to the lock CF.
        prefix = b"\xff\xff\xfflimit/"
        keys = [prefix + bytes([i]) for i in range(7)]
        order = keys[:]
        rng.shuffle(order)
        for k in order:
            put_ok(c, model, k, k[-1:] * 3, "lock")
        for limit in (1, 3, 7):
            got = scan_pairs(c, prefix, limit, "lock")
            expect(len(got) == limit, "RawScan limit %d returned %d pairs" % (limit, len(got)))
            expect([k for k, _ in got] == keys[:limit], "RawScan limit %d keys %s" % (limit, got))
        # Fewer pairs remain than the limit: all of them come back, no more.
        got = scan_pairs(c, keys[4], 100, "lock")
        expect([k for k, _ in got] == keys[4:], "RawScan near the end returned %s" % [k for k, _ in got])

    suite.check("scan_limit", "RawScan returns exactly limit pairs when more exist, and the rest when fewer", scan_limit)

    def binary_bytes():
        k1 = b"bin\x00\xff\x00a"
        k2 = b"bin\x00\xff\x00b"  # differs from k1 only after zero bytes
        k3 = b"bin\x00\xff\x00"
        v1 = bytes(range(256)) * 4
        v2 = b"\x00" * 100 + b"\xff" * 100
        v3 = b"\x00"
        for k, v in ((k1, v1), (k2, v2), (k3, v3)):
            put_ok(c, model, k, v, "default")
        expect_value(c, k1, v1, "default")
        expect_value(c, k2, v2, "default")
        expect_value(c, k3, v3, "default")
        got = scan_pairs(c, b"bin\x00", 3, "default")
        expect(got == [(k3, v3), (k1, v1), (k2, v2)], "RawScan(bin\\0) = %s" % [short(k) for k, _ in got])
        # An empty value is a value, not a delete.
        put_ok(c, model, b"bin\x00empty", b"", "default")
        expect_value(c, b"bin\x00empty", b"", "default")

    suite.check(
        "binary_bytes",
        "keys and values with zero bytes and 0xff round-trip exactly, and sort bytewise",
        binary_bytes,
    )

    def delete_not_found():
        put_ok(c, model, b"del/k", b"doomed", "default")
        expect_value(c, b"del/k", b"doomed")
        delete_ok(c, model, b"del/k", "default")
        expect_absent(c, b"del/k")
        got = scan_pairs(c, b"del/", 10, "default")
        expect(all(k != b"del/k" for k, _ in got), "RawScan still shows a deleted key")
        # Deleting what is absent is not an error and stays absent.
        delete_ok(c, model, b"del/never-written", "default")
        expect_absent(c, b"del/never-written")

    suite.check("delete_then_get", "after RawDelete, RawGet says not_found and RawScan skips the key", delete_not_found)

    def size_limits_accepted():
        key = b"lim/" + b"k" * (KEY_MAX - 4)
        put_ok(c, model, key, b"at-key-limit", "default")
        expect_value(c, key, b"at-key-limit")
        big = bytes(rng.getrandbits(8) for _ in range(1024)) * (VALUE_MAX // 1024)
        put_ok(c, model, b"lim/big", big, "default")
        expect_value(c, b"lim/big", big)
        # Keep later full-CF scans small.
        delete_ok(c, model, b"lim/big", "default")

    suite.check(
        "size_limits_accepted",
        "a key of exactly 8 KiB and a value of exactly 8 MiB are accepted and read back",
        size_limits_accepted,
    )

    def bad_input():
        put_ok(c, model, b"bad/existing", b"keep-me", "default")
        problems = []

        def want_error(what, resp):
            if not resp.error:
                problems.append("%s: no error string" % what)

        want_error('RawPut cf "nope"', c.put(b"bad/cf", b"x", "nope"))
        want_error('RawGet cf "nope"', c.get(b"bad/existing", "nope"))
        want_error('RawDelete cf "nope"', c.delete(b"bad/existing", "nope"))
        want_error('RawScan cf "nope"', c.scan(b"bad/", 10, "nope"))
        want_error("RawPut empty key", c.put(b"", b"x", "default"))
        want_error("RawPut key of 8 KiB + 1", c.put(b"bad/long/" + b"k" * (KEY_MAX - 8), b"x", "default"))
        want_error(
            "RawPut value of 8 MiB + 1",
            c.put(b"bad/existing", b"v" * (VALUE_MAX + 1), "default"),
        )
        want_error("RawPut value of 8 MiB + 1 (new key)", c.put(b"bad/huge", b"v" * (VALUE_MAX + 1), "default"))
        expect(not problems, "; ".join(problems))
        # Nothing changed: the existing value survived, nothing new appeared anywhere.
        expect_value(c, b"bad/existing", b"keep-me")
        expect_cf_matches_model(c, model)

    suite.check(
        "bad_input",
        'unknown CF "nope", empty key, key > 8 KiB and value > 8 MiB get the error string and change nothing',
        bad_input,
    )

    def unknown_method():
        expect_status(
            lambda: c.raw_method("/tinykvpb.TinyKv/NoSuchMethod")(b"", timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.UNIMPLEMENTED,
            "/tinykvpb.TinyKv/NoSuchMethod",
        )
        expect_status(
            lambda: c.raw_method("/nosuchpkg.NoSuchService/Get")(b"\x0a\x00", timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.UNIMPLEMENTED,
            "/nosuchpkg.NoSuchService/Get",
        )
        expect_value(c, b"bad/existing", b"keep-me")

    suite.check("unknown_method", "a method the server does not have answers UNIMPLEMENTED, and the server lives on",
                unknown_method)

    def garbage_request():
        garbage = [
            b"\xff" * 16,  # over-long varint tag
            b"\x12\x10abc",  # key claims 16 bytes, 3 follow
            b"\x0f",  # wire type 7 does not exist
            b"\x12",  # tag with no length
        ]
        for g in garbage:
            expect_status(
                lambda: c.raw_method("/tinykvpb.TinyKv/RawGet")(g, timeout=CALL_TIMEOUT_S),
                grpc.StatusCode.INVALID_ARGUMENT,
                "RawGet with bytes %r" % g,
            )
            expect_status(
                lambda: c.raw_method("/tinykvpb.TinyKv/RawPut")(g, timeout=CALL_TIMEOUT_S),
                grpc.StatusCode.INVALID_ARGUMENT,
                "RawPut with bytes %r" % g,
            )
        expect_value(c, b"bad/existing", b"keep-me")
        expect_cf_matches_model(c, model)

    suite.check(
        "garbage_request",
        "undecodable request bytes get INVALID_ARGUMENT, change nothing, and the server lives on",
        garbage_request,
    )

    def quirky_encoding():
        # A field-0 tag spelled as an over-long varint: stock protobuf rejects it,
        # protobuf-c 1.4.1 accepts it. Either answer is fine; a crash, a hang or a
        # half-applied write is not.
        key = b"quirk/k"
        good = kvrpcpb.RawPutRequest(key=key, value=b"quirk-v", cf="default").SerializeToString()
        call = c.raw_method("/tinykvpb.TinyKv/RawPut")
        try:
            resp = kvrpcpb.RawPutResponse.FromString(call(good + b"\x80\x80\x80\x80\x00\x00", timeout=CALL_TIMEOUT_S))
            accepted = not resp.error
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "status %s (%s)" % (e.code(), e.details()))
            accepted = False
        if accepted:
            model.put("default", key, b"quirk-v")
            expect_value(c, key, b"quirk-v")
        else:
            expect_absent(c, key)
        expect_cf_matches_model(c, model)
        return "server accepted it" if accepted else "server rejected it"

    suite.check(
        "quirky_encoding",
        "a RawPut carrying an over-long field-0 tag is either rejected or applied whole, and the server lives on",
        quirky_encoding,
    )

    suite.check(
        "contents_before_restart",
        "each CF holds exactly the acknowledged writes (full scans match the model)",
        lambda: expect_cf_matches_model(c, model),
    )
    c.close()

    def sigterm_exit():
        code = stop_server(server)
        expect(code is not None, "still running %.0f s after SIGTERM" % STOP_TIMEOUT_S)
        expect(code == 0, "exit status %d after SIGTERM" % code)

    stopped = suite.check("sigterm_exit", "SIGTERM makes the server exit with status 0 within 10 s", sigterm_exit)
    if not stopped:
        server.kill()

    def restart():
        server.start()
        expect(wait_ready(server, port), "not answering %.0f s after restart on the same data dir" % READY_TIMEOUT_S)

    if not suite.check("restart", "the server restarts on the same data dir and port", restart):
        return

    c = Client(port)

    def read_back():
        for cf in CFS:
            for key, value in model.data[cf].items():
                expect_value(c, key, value, cf)
        for cf in CFS:
            for key in model.deleted[cf]:
                expect_absent(c, key, cf)
        expect_cf_matches_model(c, model)

    suite.check("read_back_after_restart", "every acknowledged value (and delete) survives the restart", read_back)

    def every_method_answers():
        # Last on purpose: transactional handlers may read (or clean up) the
        # lock CF, where this test wrote raw bytes that are not lock records.
        import tinykvpb_pb2
        import raft_serverpb_pb2
        import coprocessor_pb2

        modules = {"kvrpcpb": kvrpcpb, "raft_serverpb": raft_serverpb_pb2, "coprocessor": coprocessor_pb2}
        service = tinykvpb_pb2.DESCRIPTOR.services_by_name["TinyKv"]
        acceptable = (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INVALID_ARGUMENT,
                      grpc.StatusCode.FAILED_PRECONDITION)
        outcomes = []
        for m in service.methods:
            req_cls = getattr(modules[m.input_type.file.package], m.input_type.name)
            resp_cls = getattr(modules[m.output_type.file.package], m.output_type.name)
            path = "/%s/%s" % (service.full_name, m.name)
            kwargs = dict(request_serializer=lambda x: x.SerializeToString(), response_deserializer=resp_cls.FromString)
            try:
                if m.client_streaming:
                    c.channel.stream_unary(path, **kwargs)(iter([]), timeout=CALL_TIMEOUT_S)
                else:
                    c.channel.unary_unary(path, **kwargs)(req_cls(), timeout=CALL_TIMEOUT_S)
                outcomes.append("%s ok" % m.name)
            except grpc.RpcError as e:
                expect(e.code() in acceptable,
                       "%s with an empty request: status %s (%s)" % (m.name, e.code(), e.details()))
                outcomes.append("%s %s" % (m.name, e.code().name))
            expect(server.alive(), "server died after %s with an empty request" % m.name)
        expect_value(c, b"bad/existing", b"keep-me")
        return ", ".join(outcomes)

    suite.check(
        "every_method_answers",
        "each TinyKv method, called with an empty request (or empty stream), answers its response type or "
        "UNIMPLEMENTED/INVALID_ARGUMENT/FAILED_PRECONDITION, and the server lives on",
        every_method_answers,
    )
    c.close()


def run(suite, tmp, rng, servers):
    """Everything between temp-dir creation and cleanup; started servers go into servers."""
    gen = os.path.join(tmp, "gen")
    os.mkdir(gen)
    if not suite.check("protoc", "the stock protoc compiles proto/*.proto for Python", lambda: generate_protos(gen)):
        return

    bindir = os.environ.get("BINDIR", "bin")
    if not os.path.isabs(bindir):
        bindir = os.path.join(REPO, bindir)
    binary = os.path.join(bindir, "tinykv-server")

    def binary_exists():
        expect(os.access(binary, os.X_OK), "%s is missing or not executable" % binary)

    if not suite.check("binary", "the server binary exists (set BINDIR to choose another)", binary_exists):
        return

    port = free_port()
    server = Server(binary, port, os.path.join(tmp, "data"), os.path.join(tmp, "server.log"))
    servers.append(server)

    def start():
        server.start()
        expect(wait_ready(server, port), "not answering RawGet within %.0f s" % READY_TIMEOUT_S)

    if suite.check("startup", "tinykv-server --standalone answers RawGet on 127.0.0.1:%d" % port, start):
        run_checks(suite, server, port, rng)
    if suite.failed:
        if server.proc is not None and not server.alive():
            print("server exit status: %d" % server.proc.returncode, flush=True)
        print("server log tail:\n" + server.log_tail(), flush=True)


def main():
    seed = int(os.environ.get("TINYKV_TEST_SEED", str(random.SystemRandom().randrange(1 << 31))))
    print("test_raw_stock_client: seed %d (re-run with TINYKV_TEST_SEED=%d)" % (seed, seed), flush=True)
    suite = Suite()
    tmp = tempfile.mkdtemp(prefix="tinykv-stock-")
    servers = []
    try:
        run(suite, tmp, random.Random(seed), servers)
    except BaseException:
        suite.failed += 1
        print("FAIL harness: the test itself raised:", flush=True)
        traceback.print_exc(file=sys.stdout)
    finally:
        for server in servers:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (suite.passed, suite.failed), flush=True)
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
