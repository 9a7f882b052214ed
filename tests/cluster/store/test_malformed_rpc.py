#!/usr/bin/python3
# Sends every gRPC method of a live tinykv-server and tinyscheduler-server malformed requests.
#
# A scheduler and one store (Raft mode, so Raft and Snapshot are served too) run on free loopback
# ports. Every method of tinykvpb.TinyKv and schedulerpb.Scheduler, taken from the services'
# descriptors (so a method added to a .proto is covered without touching this file), is sent:
#   truncated   a populated valid request cut by one byte (never decodes): INVALID_ARGUMENT;
#   wire-type   a valid request plus its first field again with the wrong wire type: INVALID_ARGUMENT;
#   other-type  the bytes of another service's request;
#   random      seeded random bytes;
#   oversized   a request over the 16 MiB message cap: RESOURCE_EXHAUSTED (gRPC's own answer) or
#               INVALID_ARGUMENT; for the key-value methods also a key over 8 KiB, which must come
#               back as the response's error field (or INVALID_ARGUMENT).
# other-type and random may decode as a request of the method's type: they must then be answered
# OK with a response that decodes, or INVALID_ARGUMENT; an unregistered method (Coprocessor)
# answers UNIMPLEMENTED to everything. Streams get the payload as their only message. After each
# method, a valid call on each server still works and both processes are alive.
#
# Environment: BINDIR (default bin/), TINYKV_TEST_SEED (the random payloads' seed, printed).
# Prints one PASS/FAIL line per check, then "N passed, N failed".

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import types

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, free_port, summary, wait_for  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BINDIR = os.path.join(REPO, os.environ.get("BINDIR", "bin"))
MSG_MAX = 16 * 1024 * 1024
CALL_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 30.0
KV_KEY_MAX = 8 * 1024
# Methods whose requests carry user keys checked against KV_KEY_MAX, and the field holding one.
KEY_FIELDS = {
    "RawGet": "key", "RawPut": "key", "RawDelete": "key", "RawScan": "start_key", "KvGet": "key", "KvScan": "start_key",
    "KvCheckTxnStatus": "primary_key", "KvPrewrite": "primary_lock",
}

pb = {}  # generated modules by proto package name


def generate_protos(outdir):
    os.makedirs(outdir, exist_ok=True)
    protos = sorted(f for f in os.listdir(os.path.join(REPO, "proto")) if f.endswith(".proto"))
    subprocess.run(["protoc", "--python_out=" + outdir, "--proto_path=proto"] + protos, cwd=REPO, check=True)
    sys.path.insert(0, outdir)
    import kvrpcpb_pb2
    import schedulerpb_pb2
    import tinykvpb_pb2

    pb.update(kvrpcpb=kvrpcpb_pb2, schedulerpb=schedulerpb_pb2, tinykvpb=tinykvpb_pb2)


def message_class(desc):
    """The generated class of a message descriptor."""
    from google.protobuf import message_factory

    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory().GetPrototype(desc)


def fill(msg, depth=0):
    """Sets every field of msg to a plain value (a populated, well-formed request)."""
    from google.protobuf.descriptor import FieldDescriptor as F

    for f in msg.DESCRIPTOR.fields:
        if f.containing_oneof is not None and msg.WhichOneof(f.containing_oneof.name):
            continue
        if f.type == F.TYPE_MESSAGE:
            if depth >= 3:
                continue
            sub = getattr(msg, f.name).add() if f.label == F.LABEL_REPEATED else getattr(msg, f.name)
            fill(sub, depth + 1)
            if f.label != F.LABEL_REPEATED:
                sub.SetInParent()
            continue
        if f.type == F.TYPE_BYTES:
            v = b"key-%d" % f.number
        elif f.type == F.TYPE_STRING:
            v = "default" if f.name == "cf" else "s%d" % f.number
        elif f.type == F.TYPE_BOOL:
            v = True
        elif f.type == F.TYPE_ENUM:
            v = f.enum_type.values[-1].number
        elif f.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
            v = 1.5
        else:
            v = 1
        if f.label == F.LABEL_REPEATED:
            getattr(msg, f.name).append(v)
        else:
            setattr(msg, f.name, v)
    return msg


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def wrong_wire_type(desc):
    """A field of desc encoded with a wire type protobuf-c refuses for it, or None."""
    from google.protobuf.descriptor import FieldDescriptor as F

    length_types = (F.TYPE_BYTES, F.TYPE_STRING, F.TYPE_MESSAGE)
    for f in desc.fields:
        if f.label == F.LABEL_REPEATED and f.type not in length_types:
            continue  # packed and unpacked encodings are both accepted
        if f.type in length_types:
            return varint(f.number << 3 | 0) + varint(1)
        return varint(f.number << 3 | 2) + varint(1) + b"x"
    return None


class Proc:
    def __init__(self, argv, log_path):
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.alive():
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def tail(self, n=15):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join("    | " + l for l in f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return "    | (no log)"


def channel(port):
    return grpc.insecure_channel("127.0.0.1:%d" % port, options=[
        ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", MSG_MAX),
        ("grpc.use_local_subchannel_pool", 1)])


def raw_call(ch, path, method_desc, payload):
    """Sends payload (bytes) as the method's only request; returns (status code, responses)."""
    ident = lambda b: b  # noqa: E731
    try:
        if method_desc.client_streaming and method_desc.server_streaming:
            call = ch.stream_stream(path, request_serializer=ident, response_deserializer=ident)
            return grpc.StatusCode.OK, list(call(iter([payload]), timeout=CALL_TIMEOUT_S))
        if method_desc.client_streaming:
            call = ch.stream_unary(path, request_serializer=ident, response_deserializer=ident)
            return grpc.StatusCode.OK, [call(iter([payload]), timeout=CALL_TIMEOUT_S)]
        call = ch.unary_unary(path, request_serializer=ident, response_deserializer=ident)
        return grpc.StatusCode.OK, [call(payload, timeout=CALL_TIMEOUT_S)]
    except grpc.RpcError as e:
        return e.code(), []


def has_error_field(resp):
    """Whether a decoded response reports an error (error / errors / region_error / header.error)."""
    for name in ("error", "errors", "region_error"):
        if name in resp.DESCRIPTOR.fields_by_name:
            f = resp.DESCRIPTOR.fields_by_name[name]
            v = getattr(resp, name)
            if f.label == f.LABEL_REPEATED and len(v):
                return True
            if f.message_type is not None and f.label != f.LABEL_REPEATED and resp.HasField(name):
                return True
            if f.message_type is None and f.label != f.LABEL_REPEATED and v:
                return True
    if "header" in resp.DESCRIPTOR.fields_by_name and resp.HasField("header"):
        return resp.header.HasField("error")
    return False


def judge(kind, code, responses, out_cls, registered, key_limit=False):
    """'' if the outcome is acceptable for this kind of payload, else why not."""
    if not registered:
        return "" if code == grpc.StatusCode.UNIMPLEMENTED else "want UNIMPLEMENTED, got %s" % code.name
    if kind in ("truncated", "wire-type"):
        return "" if code == grpc.StatusCode.INVALID_ARGUMENT else "want INVALID_ARGUMENT, got %s" % code.name
    if kind == "oversized":
        ok = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT)
        return "" if code in ok else "want RESOURCE_EXHAUSTED or INVALID_ARGUMENT, got %s" % code.name
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ""
    if code != grpc.StatusCode.OK:
        return "want OK or INVALID_ARGUMENT, got %s" % code.name
    decoded = []
    for r in responses:
        try:
            decoded.append(out_cls.FromString(r))
        except Exception as e:  # noqa: BLE001
            return "the response does not decode: %s" % e
    if key_limit and not any(has_error_field(d) for d in decoded):
        return "a key over 8 KiB was answered without an error"
    return ""


def main():
    seed = int(os.environ.get("TINYKV_TEST_SEED", str(random.randrange(1 << 31))))
    print("seed: TINYKV_TEST_SEED=%d" % seed, flush=True)
    rng = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix="tinykv-malformed-")
    procs = []
    try:
        generate_protos(os.path.join(tmp, "py"))
        pd_port, http_port, kv_port = free_port(), free_port(), free_port()
        pd = Proc([os.path.join(BINDIR, "tinyscheduler-server"), "--addr", "127.0.0.1:%d" % pd_port,
                   "--http-addr", "127.0.0.1:%d" % http_port, "--data-dir", os.path.join(tmp, "pd"),
                   "--log-level", "warn"], os.path.join(tmp, "pd.log"))
        procs.append(pd)
        kv = Proc([os.path.join(BINDIR, "tinykv-server"), "--addr", "127.0.0.1:%d" % kv_port,
                   "--data-dir", os.path.join(tmp, "store"), "--scheduler", "127.0.0.1:%d" % pd_port,
                   "--status-addr", "127.0.0.1:0", "--log-level", "warn"], os.path.join(tmp, "store.log"))
        procs.append(kv)
        kvpb, schpb = pb["kvrpcpb"], pb["schedulerpb"]
        kv_ch, pd_ch = channel(kv_port), channel(pd_port)
        raw_put = kv_ch.unary_unary("/tinykvpb.TinyKv/RawPut", request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=kvpb.RawPutResponse.FromString)
        raw_get = kv_ch.unary_unary("/tinykvpb.TinyKv/RawGet", request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=kvpb.RawGetResponse.FromString)
        members = pd_ch.unary_unary("/schedulerpb.Scheduler/GetMembers",
                                    request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=schpb.GetMembersResponse.FromString)

        def put_ok():
            try:
                r = raw_put(kvpb.RawPutRequest(key=b"probe", value=b"v1", cf="default"), timeout=2)
                return not r.error and not r.HasField("region_error")
            except grpc.RpcError:
                return False

        ready = wait_for(put_ok, READY_TIMEOUT_S)
        check("the store serves a valid RawPut", ready, "" if ready else "\n" + kv.tail())
        if not ready:
            return summary()

        def still_serving():
            try:
                g = raw_get(kvpb.RawGetRequest(key=b"probe", cf="default"), timeout=CALL_TIMEOUT_S)
                m = members(schpb.GetMembersRequest(), timeout=CALL_TIMEOUT_S)
                return kv.alive() and pd.alive() and g.value == b"v1" and not m.header.HasField("error")
            except grpc.RpcError:
                return False

        other = {
            "tinykvpb": fill(schpb.PutStoreRequest()).SerializeToString(),
            "schedulerpb": fill(kvpb.RawPutRequest()).SerializeToString(),
        }
        registered_kv = {m.name for m in pb["tinykvpb"].DESCRIPTOR.services_by_name["TinyKv"].methods} - {"Coprocessor"}
        services = [("tinykvpb", "TinyKv", kv_ch), ("schedulerpb", "Scheduler", pd_ch)]
        # Served but missing from the service in schedulerpb.proto (PD's own ReportSplit).
        extra = {"Scheduler": [types.SimpleNamespace(
            name="ReportSplit", client_streaming=False, server_streaming=False,
            input_type=schpb.ReportSplitRequest.DESCRIPTOR, output_type=schpb.ReportSplitResponse.DESCRIPTOR)]}
        verbose = os.environ.get("MALFORMED_VERBOSE") == "1"
        for pkg, svc_name, ch in services:
            svc = (pb["tinykvpb"] if pkg == "tinykvpb" else schpb).DESCRIPTOR.services_by_name[svc_name]
            for m in list(svc.methods) + extra.get(svc_name, []):
                path = "/%s.%s/%s" % (pkg, svc_name, m.name)
                in_cls, out_cls = message_class(m.input_type), message_class(m.output_type)
                registered = pkg != "tinykvpb" or m.name in registered_kv
                valid = fill(in_cls()).SerializeToString()
                payloads = [("truncated", valid[:-1])]
                wrong = wrong_wire_type(m.input_type)
                if wrong is not None:
                    payloads.append(("wire-type", valid + wrong))
                payloads.append(("other-type", other[pkg]))
                for _ in range(3):
                    payloads.append(("random", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))))
                # A bytes field (tag 0x7A0F: field 1999, length-delimited) past the message cap.
                payloads.append(("oversized", b"\xfa\x7c" + varint(MSG_MAX + 1024) + b"\0" * (MSG_MAX + 1024)))
                problems = []
                for kind, payload in payloads:
                    code, responses = raw_call(ch, path, m, payload)
                    why = judge(kind, code, responses, out_cls, registered)
                    if verbose:
                        print("    %s %s -> %s (%d responses)" % (path, kind, code.name, len(responses)))
                    if why:
                        problems.append("%s: %s" % (kind, why))
                if registered and m.name in KEY_FIELDS:
                    req = fill(in_cls())
                    setattr(req, KEY_FIELDS[m.name], b"k" * (KV_KEY_MAX + 1))
                    code, responses = raw_call(ch, path, m, req.SerializeToString())
                    why = judge("key-limit", code, responses, out_cls, registered, key_limit=True)
                    if verbose:
                        print("    %s key-limit -> %s %s" % (path, code.name, [out_cls.FromString(r) for r in responses]))
                    if why:
                        problems.append("key over 8 KiB: %s" % why)
                check("%s: malformed requests answered" % path, not problems, "; ".join(problems))
                serving = still_serving()
                check("%s: both servers still serve" % path, serving,
                      "" if serving else "\n" + kv.tail() + "\n" + pd.tail())
                if not serving:
                    return summary()
        # A read ts a day past the clock (no TSO has issued it) is refused, not served: served, it
        # would push every later one-phase commit of this store to the TSO.
        kv_get = kv_ch.unary_unary("/tinykvpb.TinyKv/KvGet", request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=kvpb.GetResponse.FromString)
        now_ms = int(time.time() * 1000)
        answers = []
        for ts_ms in (now_ms + 24 * 3600 * 1000, now_ms):
            try:
                r = kv_get(kvpb.GetRequest(key=b"probe", version=ts_ms << 18), timeout=CALL_TIMEOUT_S)
                answers.append(("OK", r.HasField("region_error") or r.HasField("error")))
            except grpc.RpcError as e:
                answers.append((e.code().name, e.details()))
        check("KvGet at a ts a day past the clock: INVALID_ARGUMENT; at the clock's: served",
              answers[0][0] == "INVALID_ARGUMENT" and "10 minutes" in answers[0][1] and
              answers[1] == ("OK", False), repr(answers))
        return summary()
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        check("the test ran to its end", False)
        return summary()
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
