#!/usr/bin/env bash
# bench.sh — `make bench`: raw KV figures for a standalone store and for a three-replica cluster on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
BINDIR=${BINDIR:-bin}
CTL="$BINDIR/tinykv-ctl"
dir=$(mktemp -d /tmp/tinykv-bench-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # addr: a read answers (found or not found)
    for _ in $(seq 1 100); do
        "$CTL" --addr "$1" --timeout 200 raw get x >/dev/null 2>&1 && return 0
        [ $? -eq 1 ] && return 0
        sleep 0.1
    done
    return 1
}

echo "== standalone store (synced writes), $(nproc) cores, loopback gRPC"
p=$(port)
"$BINDIR"/tinykv-server --standalone --addr 127.0.0.1:$p --data-dir "$dir/standalone" --log-level warn \
    --status-addr 127.0.0.1:0 &
pids+=($!)
wait_ready 127.0.0.1:$p
for t in 1 4 16; do
    "$CTL" --addr 127.0.0.1:$p bench raw --ops 20000 --threads $t --value-size 100
done
"$CTL" --addr 127.0.0.1:$p bench raw --ops 2000 --threads 4 --value-size 65536

echo "== three replicas (Raft, synced raft log), scheduler + 3 stores on loopback"
pd=$(port)
http=$(port)
"$BINDIR"/tinyscheduler-server --addr 127.0.0.1:$pd --http-addr 127.0.0.1:$http \
    --data-dir "$dir/pd" --log-level warn &
pids+=($!)
sleep 0.5
ports=()
for i in 1 2 3; do
    sp=$(port)
    ports+=($sp)
    "$BINDIR"/tinykv-server --addr 127.0.0.1:$sp --data-dir "$dir/s$i" \
        --scheduler 127.0.0.1:$pd --status-addr 127.0.0.1:0 --log-level warn &
    pids+=($!)
    sleep 0.3
done
leader=""
for _ in $(seq 1 300); do
    leader=$(curl -s "127.0.0.1:$http/pd/api/v1/regions" "127.0.0.1:$http/pd/api/v1/stores" |
        /usr/bin/python3 -c '
import json, sys
text = sys.stdin.read()
dec = json.JSONDecoder(); regions, end = dec.raw_decode(text); stores, _ = dec.raw_decode(text[end:].lstrip())
r = regions["regions"][0] if regions["count"] else None
if r and len(r["peers"]) == 3 and r["leader"]["store_id"]:
    print([s["store"]["address"] for s in stores["stores"] if s["store"]["id"] == r["leader"]["store_id"]][0])
' 2>/dev/null || true)
    [ -n "$leader" ] && break
    sleep 0.1
done
if [ -z "$leader" ]; then
    echo "cluster did not form" >&2
    exit 1
fi
echo "leader at $leader"
for t in 1 4 16 64; do
    "$CTL" --addr "$leader" bench raw --ops 10000 --threads $t --value-size 100
done
"$CTL" --addr "$leader" bench raw --ops 1000 --threads 16 --value-size 65536

echo "== side by side with etcd: the same load against our 3 stores and a 3-member etcd"
BUILD="${BUILD:-build}" BINDIR="$BINDIR" /usr/bin/python3 tests/bench_etcd.py

# The filesystem beside libfuse's passthrough of a local directory (its own cluster; needs root
# and /dev/fuse, else it says so).
/usr/bin/python3 tests/cluster/fs/fs_bench.py --start

echo "== many regions, idle: a scheduler and three stores split into ${BENCH_REGIONS:-1000} regions"
BINDIR="$BINDIR" /usr/bin/python3 tests/bench_regions.py

echo "== recovery after faults (real processes; needs root, iptables and /dev/fuse)"
# The recovery tests print their figures; here only those lines are kept.
for t in build/tests/store/test_recovery_tso build/tests/store/test_recovery_leader_kill; do
    [ -x "$t" ] && BINDIR="$BINDIR" "$t" 2>/dev/null | grep -E "recovery|resume|again|writes" | grep -v "^\[" || true
done
for t in tests/cluster/store/test_recovery_partition.py tests/cluster/store/test_recovery_mount.py; do
    BINDIR="$BINDIR" /usr/bin/python3 "$t" 2>/dev/null | grep -vE "^(PASS|FAIL|---)|passed, " || true
done
