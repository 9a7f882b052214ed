#!/usr/bin/env bash
# test_balance_live.sh — the schedulers spread a split cluster over five real stores.
#
# Starts bin/tinyscheduler-server and five bin/tinykv-server processes on free loopback ports,
# splits the first region into 40 through `tinykv-ctl region split`, and waits (bounded polls)
# until every region has three replicas and a leader and no store holds more than 1.25x the
# mean of regions or of leaders; then takes one store offline and waits for it to become
# Tombstone with every region still at three replicas on the other four. Keys written before
# the split read back after the balancing and after the drain.
set -u
cd "$(dirname "$0")/../../.."
BINDIR=${BINDIR:-bin}
CTL="$BINDIR/tinykv-ctl"
dir=$(mktemp -d /tmp/tinykv-balance-live-XXXXXX)
passed=0
failed=0
pids=()

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
cleanup() {
    exec 2>/dev/null
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1${2:+ -- $2}"; }
wait_for() {
    local secs=$1
    shift
    local deadline=$((SECONDS + secs))
    while [ $SECONDS -lt $deadline ]; do
        "$@" && return 0
        sleep 0.5
    done
    return 1
}

for b in tinyscheduler-server tinykv-server tinykv-ctl; do
    if [ ! -x "$BINDIR/$b" ]; then
        echo "FAIL $BINDIR/$b missing: build it with make"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

GRPC=127.0.0.1:$(free_port)
HTTP=127.0.0.1:$(free_port)
"$BINDIR"/tinyscheduler-server --addr "$GRPC" --http-addr "$HTTP" --data-dir "$dir/pd" \
    --log-level warn --schedule-interval-ms 200 2>>"$dir/pd.log" &
pids+=($!)
pd_up() { "$CTL" --pd-http "$HTTP" --timeout 300 tso >/dev/null 2>&1; }
if ! wait_for 10 pd_up; then
    echo "FAIL scheduler_starts"
    echo "0 passed, 1 failed"
    exit 1
fi
for i in 0 1 2 3 4; do
    "$BINDIR"/tinykv-server --addr 127.0.0.1:"$(free_port)" --data-dir "$dir/store$i" \
        --scheduler "$GRPC" --status-addr 127.0.0.1:0 --log-level warn 2>>"$dir/store$i.log" &
    pids+=($!)
    sleep 0.3
done

# state — prints "regions leaders-ok full spread-ok max_r mean_r max_l mean_l" for the Up stores.
state() {
    local regions stores
    regions=$("$CTL" --pd-http "$HTTP" --json region list 2>/dev/null) || return 1
    stores=$("$CTL" --pd-http "$HTTP" --json store list 2>/dev/null) || return 1
    python3 - "$regions" "$stores" "$1" <<'PY'
import json, sys
regions = json.loads(sys.argv[1])["regions"]
stores = [s for s in json.loads(sys.argv[2])["stores"] if s["store"]["state_name"] == "Up"]
want = int(sys.argv[3])
counts = {s["store"]["id"]: [0, 0] for s in stores}
full = all(len(r["peers"]) == 3 and r["leader"]["id"] for r in regions)
for r in regions:
    for p in r["peers"]:
        if p["store_id"] in counts:
            counts[p["store_id"]][0] += 1
    if r["leader"]["store_id"] in counts:
        counts[r["leader"]["store_id"]][1] += 1
mr = sum(c[0] for c in counts.values()) / max(1, len(counts))
ml = sum(c[1] for c in counts.values()) / max(1, len(counts))
xr = max(c[0] for c in counts.values()) if counts else 0
xl = max(c[1] for c in counts.values()) if counts else 0
ok = len(regions) >= want and full and xr <= 1.25 * mr and xl <= 1.25 * ml
print("ok" if ok else "no", len(regions), len(counts), "max/mean regions %d/%.1f leaders %d/%.1f" % (xr, mr, xl, ml))
PY
}
balanced() {
    local s
    s=$(state "$1") || return 1
    last_state=$s
    [ "${s%% *}" == ok ]
}
five_up() {
    last_state=$(state 1) || return 1
    # One region, so the spread cannot be judged yet: 5 Up stores and the region replicated.
    [ "$(cut -d' ' -f3 <<<"$last_state")" -eq 5 ] &&
        "$CTL" --pd-http "$HTTP" --json region list 2>/dev/null | python3 -c 'import json,sys
r=json.load(sys.stdin)["regions"]; sys.exit(0 if len(r) == 1 and len(r[0]["peers"]) == 3 and r[0]["leader"]["id"] else 1)'
}
if wait_for 60 five_up; then pass five_stores_up_first_region_replicated; else fail five_stores_up "$last_state"; fi

# Data written before the moves reads back after them (raw puts through the client library).
data_keys=()
for i in $(seq 0 13 999); do data_keys+=("$(printf 'k%03d-data' "$i")"); done
put_all() {
    local k
    for k in "${data_keys[@]}"; do
        "$CTL" --pd "$GRPC" raw put "$k" "value of $k" >/dev/null 2>>"$dir/put.err" || return 1
    done
}
read_all() {
    local k v
    for k in "${data_keys[@]}"; do
        v=$("$CTL" --pd "$GRPC" raw get "$k" 2>>"$dir/get.err") || return 1
        [ "$v" == "value of $k" ] || return 1
    done
}
if put_all; then pass "wrote_${#data_keys[@]}_keys"; else fail write_keys "$(tail -3 "$dir/put.err")"; fi

keys=()
for i in $(seq 1 39); do keys+=("$(printf 'k%03d' $((i * 25)))"); done
if "$CTL" --pd-http "$HTTP" region split "${keys[@]}" >/dev/null 2>"$dir/split.err"; then
    pass split_queued
else
    fail split_queued "$(cat "$dir/split.err")"
fi
t0=$SECONDS
if wait_for 180 balanced 40; then
    pass "forty_regions_balanced_in_$((SECONDS - t0))s -- $last_state"
else
    fail forty_regions_balanced "$last_state; see $dir"
fi

if read_all; then pass keys_read_back_after_balancing; else fail keys_read_back_after_balancing "$(tail -3 "$dir/get.err")"; fi

# One store offline: drained to Tombstone, the rest still balanced.
victim=$("$CTL" --pd-http "$HTTP" --json store list | python3 -c 'import json,sys; print(json.load(sys.stdin)["stores"][0]["store"]["id"])')
"$CTL" --pd-http "$HTTP" store state "$victim" Offline >/dev/null
tombstone() {
    "$CTL" --pd-http "$HTTP" --json store show "$victim" 2>/dev/null |
        python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["store"]["state_name"] == "Tombstone" else 1)'
}
t0=$SECONDS
if wait_for 180 tombstone; then pass "offline_store_tombstone_in_$((SECONDS - t0))s"; else fail offline_store_tombstone "see $dir"; fi
if wait_for 120 balanced 40; then pass "four_stores_balanced -- $last_state"; else fail four_stores_balanced "$last_state"; fi

if read_all; then pass keys_read_back_after_drain; else fail keys_read_back_after_drain "$(tail -3 "$dir/get.err")"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
