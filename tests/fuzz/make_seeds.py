#!/usr/bin/python3
# make_seeds.py — writes the hand-made seed inputs of tests/fuzz/corpus/<target>/ (seed-*.bin).
#
# Run from anywhere: `tests/fuzz/make_seeds.py`. Seeds are rewritten in place; inputs the fuzzers
# found (named for what they found) are left alone. Requests are packed by the stock protobuf
# from proto/*.proto compiled at run time into a temporary directory.

import os
import shutil
import struct
import subprocess
import sys
import tempfile

FUZZ = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(FUZZ, "..", ".."))
CORPUS = os.path.join(FUZZ, "corpus")

# The order fuzz_grpc_requests.c builds its table in: kv_service_methods (raw, then txn),
# raft_service_methods, then pd_grpc_start's table.
GRPC_METHODS = [
    "RawGet", "RawPut", "RawDelete", "RawScan",
    "KvGet", "KvScan", "KvPrewrite", "KvCommit", "KvCheckTxnStatus", "KvBatchRollback",
    "KvResolveLock",
    "Raft", "Snapshot",
    "GetMembers", "Bootstrap", "IsBootstrapped", "AllocID", "GetStore", "PutStore",
    "GetAllStores", "StoreHeartbeat", "GetRegion", "GetPrevRegion", "GetRegionByID",
    "ScanRegions", "AskSplit", "ReportSplit", "GetClusterConfig", "PutClusterConfig",
    "ScatterRegion", "GetGCSafePoint", "UpdateGCSafePoint", "GetOperator", "Tso",
    "RegionHeartbeat",
]


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name + ".bin"), "wb") as f:
        f.write(data)


def enc_key(key):
    """codec/key.c's memcomparable encoding: groups of 8 bytes, each followed by a marker."""
    out = b""
    for i in range(0, len(key) + 1, 8):
        group = key[i:i + 8]
        out += group + b"\0" * (8 - len(group)) + bytes([255 - (8 - len(group))])
        if len(group) < 8:
            break
    return out


def codec_seeds():
    for name, key in [("empty", b""), ("short", b"abc"), ("eight", b"12345678"), ("long", b"k" * 20)]:
        write("codec_key", name, enc_key(key))
        ts = struct.pack(">Q", (~1000) & (2**64 - 1))
        write("mvcc_records", "data-key-" + name, enc_key(key) + ts)
        write("mvcc_records", "lock-key-" + name, enc_key(key))
    write("codec_key", "split", b"\x03abcdef")
    for kind in (1, 2, 4):
        write("mvcc_records", "lock-%d" % kind, b"primary" + bytes([kind]) + struct.pack(">QQ", 7, 3000))
    for kind in (1, 2, 3, 4):
        write("mvcc_records", "write-%d" % kind, bytes([kind]) + struct.pack(">Q", 42))


def fs_seeds():
    for name, p in [("root", "/"), ("file", "/a/b/c"), ("escaped", "/%2E/x%25y/%00z"),
                    ("empty-comp", "/a/%/b"), ("snapshots", "/.snapshots"),
                    ("snapshot", "/.snapshots/1234/dir/file"), ("trailing", "/dir/"),
                    ("dots", "/%2E%2E/%2Esnapshots")]:
        write("fs_path", name, p.encode())
    write("fs_path", "key-dir", b"a/b/")


def http_seeds():
    p = "/pd/api/v1"
    reqs = {
        "health": "GET %s/health\n" % p,
        "config-get": "GET %s/config\n" % p,
        "config-post": 'POST %s/config\n{"max-replicas": 3, "leader-schedule-limit": 4}' % p,
        "stores": "GET %s/stores\n" % p,
        "store": "GET %s/store/1\n" % p,
        "store-delete": "DELETE %s/store/2\n" % p,
        "store-state": "POST %s/store/2/state?state=Offline\n" % p,
        "regions": "GET %s/regions?limit=10\n" % p,
        "regions-key": "GET %s/regions/key?key=61&end_key=7a&format=hex&limit=3\n" % p,
        "regions-count": "GET %s/regions/count\n" % p,
        "regions-store": "GET %s/regions/store/1\n" % p,
        "region-id": "GET %s/region/id/2\n" % p,
        "region-key": "GET %s/region/key/abc\n" % p,
        "region-key-hex": "GET %s/region/key/616263?format=hex\n" % p,
        "split": 'POST %s/regions/split\n{"split_keys": ["61", "6d"]}' % p,
        "operators": "GET %s/operators\n" % p,
        "operator-add-peer": 'POST %s/operators\n{"name": "add-peer", "region_id": 2, "to_store_id": 2}' % p,
        "operator-transfer": 'POST %s/operators\n{"name": "transfer-leader", "region_id": 2, "to_store_id": 2}' % p,
        "operator-remove": 'POST %s/operators\n{"name": "remove-peer", "region_id": 2, "store_id": 1}' % p,
        "operator-scatter": 'POST %s/operators\n{"name": "scatter-region", "region_id": 2}' % p,
        "operator-get": "GET %s/operators/2\n" % p,
        "operator-delete": "DELETE %s/operators/2\n" % p,
        "records": "GET %s/operators/records?limit=5\n" % p,
        "schedulers": "GET %s/schedulers\n" % p,
        "scheduler-add": 'POST %s/schedulers\n{"name": "balance-leader-scheduler"}' % p,
        "scheduler-delete": "DELETE %s/schedulers/balance-region-scheduler\n" % p,
        "tso": "GET %s/tso\n" % p,
        "gc": "GET %s/gc/safepoint\n" % p,
        "metrics": "GET /metrics\n",
        "members": "GET %s/members\n" % p,
        "cluster": "GET %s/cluster\n" % p,
    }
    for name, r in reqs.items():
        write("http_api", name, r.encode())
    write("http_api", "sequence", (reqs["operator-add-peer"] + "\n%%\n" + reqs["operator-get"] +
                                   "%%\n" + reqs["operator-delete"]).encode())


def grpc_seeds(tmp):
    protos = sorted(f for f in os.listdir(os.path.join(REPO, "proto")) if f.endswith(".proto"))
    subprocess.run(["protoc", "--python_out=" + tmp, "--proto_path=proto"] + protos, cwd=REPO, check=True)
    sys.path.insert(0, tmp)
    import kvrpcpb_pb2 as kv
    import metapb_pb2 as meta
    import raft_serverpb_pb2 as rs
    import schedulerpb_pb2 as sch
    import eraftpb_pb2 as era

    def call(method, msg):
        data = msg.SerializeToString()
        return bytes([GRPC_METHODS.index(method)]) + struct.pack("<H", len(data)) + data

    ctx = kv.Context(region_id=2, region_epoch=meta.RegionEpoch(conf_ver=1, version=1),
                     peer=meta.Peer(id=3, store_id=1))
    hdr = sch.RequestHeader(cluster_id=0)
    region = meta.Region(id=2, region_epoch=meta.RegionEpoch(conf_ver=1, version=1),
                         peers=[meta.Peer(id=3, store_id=1)])
    seeds = {
        "raw": [call("RawPut", kv.RawPutRequest(context=ctx, key=b"k", value=b"v", cf="default")),
                call("RawGet", kv.RawGetRequest(context=ctx, key=b"k", cf="default")),
                call("RawScan", kv.RawScanRequest(start_key=b"a", end_key=b"z", limit=10, cf="default")),
                call("RawDelete", kv.RawDeleteRequest(key=b"k", cf="write"))],
        "txn": [call("KvPrewrite", kv.PrewriteRequest(
                    context=ctx, mutations=[kv.Mutation(op=kv.Put, key=b"a", value=b"1"),
                                            kv.Mutation(op=kv.Del, key=b"b")],
                    primary_lock=b"a", start_version=10, lock_ttl=3000)),
                call("KvGet", kv.GetRequest(key=b"a", version=20)),
                call("KvCheckTxnStatus", kv.CheckTxnStatusRequest(primary_key=b"a", lock_ts=10, current_ts=30)),
                call("KvCommit", kv.CommitRequest(start_version=10, keys=[b"a", b"b"], commit_version=15)),
                call("KvScan", kv.ScanRequest(start_key=b"", limit=5, version=20)),
                call("KvBatchRollback", kv.BatchRollbackRequest(start_version=11, keys=[b"c"])),
                call("KvResolveLock", kv.ResolveLockRequest(start_version=10, commit_version=0))],
        "raft": [call("Raft", rs.RaftMessage(region_id=2, from_peer=meta.Peer(id=4, store_id=2),
                                             to_peer=meta.Peer(id=3, store_id=1),
                                             message=era.Message(msg_type=era.MsgHeartbeat, term=2),
                                             region_epoch=meta.RegionEpoch(conf_ver=1, version=1))),
                 call("Snapshot", rs.SnapshotChunk(message=rs.RaftMessage(
                     region_id=2, message=era.Message(msg_type=era.MsgSnapshot, snapshot=era.Snapshot(
                         metadata=era.SnapshotMetadata(index=5, term=2)))), data=b"x" * 40))],
        "pd-stores": [call("PutStore", sch.PutStoreRequest(header=hdr, store=meta.Store(id=5, address="127.0.0.1:20165"))),
                      call("GetStore", sch.GetStoreRequest(header=hdr, store_id=5)),
                      call("StoreHeartbeat", sch.StoreHeartbeatRequest(header=hdr, stats=sch.StoreStats(
                          store_id=5, capacity=1 << 30, available=1 << 29))),
                      call("GetAllStores", sch.GetAllStoresRequest(header=hdr))],
        "pd-regions": [call("GetRegion", sch.GetRegionRequest(header=hdr, region_key=b"m")),
                       call("GetPrevRegion", sch.GetRegionRequest(header=hdr, region_key=b"m")),
                       call("GetRegionByID", sch.GetRegionByIDRequest(header=hdr, region_id=2)),
                       call("ScanRegions", sch.ScanRegionsRequest(header=hdr, start_key=b"", limit=5)),
                       call("AskSplit", sch.AskSplitRequest(header=hdr, region=region)),
                       call("ReportSplit", sch.ReportSplitRequest(
                           header=hdr, left=meta.Region(id=2, end_key=b"m"), right=meta.Region(id=9, start_key=b"m"))),
                       call("ScatterRegion", sch.ScatterRegionRequest(header=hdr, region_id=2)),
                       call("GetOperator", sch.GetOperatorRequest(header=hdr, region_id=2))],
        "pd-misc": [call("GetMembers", sch.GetMembersRequest(header=hdr)),
                    call("IsBootstrapped", sch.IsBootstrappedRequest(header=hdr)),
                    call("Bootstrap", sch.BootstrapRequest(header=hdr, store=meta.Store(id=1, address="x"))),
                    call("AllocID", sch.AllocIDRequest(header=hdr)),
                    call("GetClusterConfig", sch.GetClusterConfigRequest(header=hdr)),
                    call("PutClusterConfig", sch.PutClusterConfigRequest(header=hdr, cluster=meta.Cluster(id=1, max_peer_count=3))),
                    call("GetGCSafePoint", sch.GetGCSafePointRequest(header=hdr)),
                    call("UpdateGCSafePoint", sch.UpdateGCSafePointRequest(header=hdr, safe_point=100)),
                    call("Tso", sch.TsoRequest(header=hdr, count=10))],
        "pd-heartbeat": [call("RegionHeartbeat", sch.RegionHeartbeatRequest(
            header=hdr, region=meta.Region(id=2, region_epoch=meta.RegionEpoch(conf_ver=1, version=2),
                                           peers=[meta.Peer(id=3, store_id=1)], end_key=b"m"),
            leader=meta.Peer(id=3, store_id=1), approximate_size=1 << 20))],
    }
    for name, calls in seeds.items():
        write("grpc_requests", name, b"".join(calls))
    write("grpc_requests", "fault-region-error", bytes([0xFF, 0x00, 0x00]) + seeds["raw"][0])


def main():
    codec_seeds()
    fs_seeds()
    http_seeds()
    tmp = tempfile.mkdtemp(prefix="tinykv-seeds-")
    try:
        grpc_seeds(tmp)
    finally:
        shutil.rmtree(tmp)
    print("seeds written under", CORPUS)


if __name__ == "__main__":
    main()
