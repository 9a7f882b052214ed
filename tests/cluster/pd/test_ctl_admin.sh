#!/usr/bin/env bash
# test_ctl_admin.sh — tinykv-ctl's admin subcommands against a real scheduler and three stores.
#
# Starts bin/tinyscheduler-server (with an admin token) on free loopback ports in a temp dir,
# checks the subcommands on the empty cluster, then starts three bin/tinykv-server processes in
# cluster mode (the first bootstraps the scheduler) and checks every subcommand's tables, --json
# output and exit codes: 0 ok, 1 API error or not found, 2 usage, 3 scheduler unreachable.
set -u
cd "$(dirname "$0")/../../.."
BINDIR=${BINDIR:-bin}
CTL="$BINDIR/tinykv-ctl"
TOKEN=ctl-admin-test-token
dir=$(mktemp -d /tmp/tinykv-ctl-admin-XXXXXX)
passed=0
failed=0
pd_pid=
store_pids=()

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cleanup() {
    exec 2>/dev/null # no job-control notices for the processes killed here
    [ -n "$pd_pid" ] && kill -CONT "$pd_pid" 2>/dev/null && kill -KILL "$pd_pid" 2>/dev/null
    for p in "${store_pids[@]}"; do
        kill -CONT "$p" 2>/dev/null
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1${2:+ -- $2}"; }

# ctl ARGS... — tinykv-ctl against the scheduler; stdout in $out, stderr in $err, status in $rc.
ctl() {
    out=$("$CTL" --pd-http "$HTTP" "$@" 2>"$dir/stderr")
    rc=$?
    err=$(cat "$dir/stderr")
    if [ -n "${CTL_ADMIN_SHOW:-}" ]; then
        printf '$ tinykv-ctl %s  (exit %d)\n%s\n%s\n' "$*" "$rc" "$out" "$err"
    fi
}

# expect NAME STATUS ARGS... — tinykv-ctl ARGS must exit with STATUS.
expect() {
    local name=$1 want=$2
    shift 2
    ctl "$@"
    if [ "$rc" -eq "$want" ]; then pass "$name"; else fail "$name" "exit $rc, want $want; stderr: $err"; fi
}

# expect_out NAME REGEX ARGS... — tinykv-ctl ARGS exits 0 and its stdout matches REGEX (grep -E).
expect_out() {
    local name=$1 re=$2
    shift 2
    ctl "$@"
    if [ "$rc" -eq 0 ] && grep -qE -- "$re" <<<"$out"; then
        pass "$name"
    else
        fail "$name" "exit $rc; stdout: $out; stderr: $err"
    fi
}

# jq_py EXPR — evaluates a Python expression over j = the JSON in $out; prints the result.
jq_py() {
    python3 -c "import json,sys; j=json.loads(sys.stdin.read()); print($1)" <<<"$out" 2>/dev/null
}

# expect_json NAME EXPR WANT ARGS... — tinykv-ctl --json ARGS parses as JSON and EXPR gives WANT.
expect_json() {
    local name=$1 expr=$2 want=$3
    shift 3
    ctl --json "$@"
    local got
    got=$(jq_py "$expr")
    if [ "$rc" -eq 0 ] && [ "$got" == "$want" ]; then
        pass "$name"
    else
        fail "$name" "exit $rc; $expr = [$got], want [$want]; stderr: $err"
    fi
}

# table_ok NAME HEADER MIN_ROWS — $out is an aligned table: the header line's columns are HEADER
# and at least MIN_ROWS rows follow, each with at least as many columns as the header.
table_ok() {
    local name=$1 header=$2 min=$3
    local got_header rows short
    got_header=$(head -1 <<<"$out" | tr -s ' ')
    rows=$(tail -n +2 <<<"$out" | grep -c .)
    short=$(tail -n +2 <<<"$out" | awk -v n="$(wc -w <<<"$header")" 'NF < n' | grep -c .)
    if [ "$got_header" == "$header" ] && [ "$rows" -ge "$min" ] && [ "$short" -eq 0 ]; then
        pass "$name"
    else
        fail "$name" "header [$got_header] rows $rows short $short: $out"
    fi
}

# wait_for SECONDS CONDITION... — polls the condition (a command) every 0.2 s, bounded.
wait_for() {
    local secs=$1
    shift
    local deadline=$((SECONDS + secs))
    while [ $SECONDS -lt $deadline ]; do
        "$@" && return 0
        sleep 0.2
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
    --log-level warn --admin-token "$TOKEN" --schedule-interval-ms 100 2>>"$dir/pd.log" &
pd_pid=$!
pd_up() { "$CTL" --pd-http "$HTTP" --timeout 300 tso >/dev/null 2>&1; }
if ! wait_for 10 pd_up; then
    echo "FAIL scheduler_starts -- see log:"
    cat "$dir/pd.log"
    echo "0 passed, 1 failed"
    exit 1
fi

# ---- an empty, unbootstrapped cluster ----
expect_out empty_store_list_header '^ID +ADDRESS +STATE +REGIONS +LEADERS +LAST-HEARTBEAT$' store list
table_ok empty_store_table "ID ADDRESS STATE REGIONS LEADERS LAST-HEARTBEAT" 0
expect_json empty_store_json 'j["count"], len(j["stores"])' "0 0" store
expect_json empty_region_json 'j["count"]' 0 region list
expect_json empty_operator_json 'len(j)' 0 operator list
expect empty_store_show_not_found 1 store show 1
if grep -q "not found" <<<"$err"; then pass empty_store_show_message; else fail empty_store_show_message "$err"; fi
expect empty_region_split_refused 1 --token "$TOKEN" region split m
if grep -q "not bootstrapped" <<<"$err"; then pass empty_region_split_message; else fail empty_region_split_message "$err"; fi

# ---- usage errors: exit 2 without talking to anyone ----
expect unknown_command_exits_2 2 frobnicate
expect unknown_store_verb_exits_2 2 store frob
expect unknown_region_verb_exits_2 2 region frob 1
expect unknown_operator_verb_exits_2 2 operator frob
expect unknown_scheduler_verb_exits_2 2 scheduler frob x
expect unknown_config_verb_exits_2 2 config frob
expect store_show_needs_id 2 store show
expect store_show_bad_id 2 store show abc
expect store_state_bad_state 2 store state 1 Sideways
expect operator_add_bad_kind 2 operator add merge-region 1 2
expect operator_add_missing_store 2 operator add add-peer 1
expect region_key_bad_hex 2 --hex region key 6z
expect region_split_needs_keys 2 region split
expect region_split_bad_hex 2 --hex region split 6d 6z
expect region_split_odd_hex 2 --hex region split 6d0
expect tso_takes_no_arguments 2 tso now
expect config_set_needs_value 2 config set max-replicas
ctl
if [ "$rc" -eq 2 ]; then pass no_command_exits_2; else fail no_command_exits_2 "exit $rc"; fi

# ---- tso ----
ctl tso
ts=$(awk '$1 == "ts" {print $2}' <<<"$out")
phys=$(awk '$1 == "physical" {print $2}' <<<"$out")
logi=$(awk '$1 == "logical" {print $2}' <<<"$out")
now_ms=$(($(date +%s%N) / 1000000))
if [ "$rc" -eq 0 ] && [ -n "$ts" ] && [ $(((phys << 18) | logi)) == "$ts" ] &&
    [ $((now_ms - phys)) -lt 10000 ] && [ $((phys - now_ms)) -lt 10000 ] &&
    grep -qE "^physical +$phys ms \($(date -u +%Y-%m-%d) [0-9:.]+ UTC\)$" <<<"$out"; then
    pass tso_decoded
else
    fail tso_decoded "$out"
fi
expect_json tso_json_increases "j['ts'] > $ts and j['ts'] == (j['physical'] << 18 | j['logical'])" True tso

# ---- config ----
expect_out config_show '^max-replicas +3$' config show
expect_out config_show_default_verb '^max-store-down-time +30m0s$' config
expect config_set_needs_token 1 config set max-replicas 5
if grep -q "token" <<<"$err"; then pass config_set_token_message; else fail config_set_token_message "$err"; fi
expect_out config_set_number '^max-replicas +5$' --token "$TOKEN" config set max-replicas 5
expect_out config_set_duration '^max-store-down-time +1h0m0s$' --token "$TOKEN" config set max-store-down-time 1h
expect config_set_unknown_key 1 --token "$TOKEN" config set no-such-key 1
expect config_set_bad_value 1 --token "$TOKEN" config set max-replicas 99
expect_json config_json 'j["max-replicas"], j["max-store-down-time"]' "5 1h0m0s" config show
expect_out config_set_back '^max-replicas +3$' --token "$TOKEN" config set max-replicas 3

# ---- env and flag precedence ----
out=$(TINYKV_PD_HTTP=$HTTP "$CTL" tso 2>/dev/null)
if [ $? -eq 0 ] && grep -q '^ts ' <<<"$out"; then pass env_pd_http_honoured; else fail env_pd_http_honoured "$out"; fi
dead=127.0.0.1:$(free_port)
out=$(TINYKV_PD_HTTP=$dead "$CTL" --pd-http "$HTTP" tso 2>/dev/null)
if [ $? -eq 0 ]; then pass flag_overrides_env; else fail flag_overrides_env; fi
out=$(TINYKV_PD_HTTP=$dead "$CTL" tso 2>/dev/null)
if [ $? -eq 3 ]; then pass env_dead_address_exits_3; else fail env_dead_address_exits_3; fi

# ---- three stores join; the first bootstraps ----
store_addrs=()
for i in 0 1 2; do
    a=127.0.0.1:$(free_port)
    store_addrs+=("$a")
    "$BINDIR"/tinykv-server --addr "$a" --data-dir "$dir/store$i" --scheduler "$GRPC" \
        --status-addr 127.0.0.1:0 --log-level warn 2>>"$dir/store$i.log" &
    store_pids+=($!)
    sleep 0.3
done
replicated() {
    local o
    o=$("$CTL" --pd-http "$HTTP" --json region list 2>/dev/null) || return 1
    python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); r=j["regions"]
sys.exit(0 if len(r) >= 1 and len(r[0]["peers"]) == 3 and r[0]["leader"]["id"] else 1)' <<<"$o"
}
if wait_for 60 replicated; then
    pass three_replicas_within_60s
else
    fail three_replicas_within_60s "see $dir"
    tail -5 "$dir"/*.log
fi

# ---- stores ----
expect_out store_list_three_rows '^ID +ADDRESS' store list
table_ok store_table "ID ADDRESS STATE REGIONS LEADERS LAST-HEARTBEAT" 3
up_rows=$(tail -n +2 <<<"$out" | awk '$3 == "Up"' | grep -c .)
if [ "$up_rows" -eq 3 ]; then pass store_list_all_up; else fail store_list_all_up "$out"; fi
for a in "${store_addrs[@]}"; do
    grep -q " $a " <<<"$out" || fail "store_list_shows_$a" "$out"
done
expect_json store_list_json 'j["count"], sorted(s["store"]["address"] for s in j["stores"]) == sorted("'"${store_addrs[*]}"'".split())' "3 True" store list
ids=$(jq_py '" ".join(str(s["store"]["id"]) for s in j["stores"])')
sid=$(cut -d' ' -f1 <<<"$ids")
expect_out store_show "^id +$sid$" store show "$sid"
if grep -qE '^state +Up$' <<<"$out" && grep -qE '^last heartbeat +[0-9]{4}-' <<<"$out"; then
    pass store_show_fields
else
    fail store_show_fields "$out"
fi
expect_json store_show_json 'j["store"]["id"], j["store"]["state_name"]' "$sid Up" store show "$sid"
expect store_show_unknown 1 store show 424242
expect store_state_needs_token 1 store state "$sid" Offline
expect_out store_state_offline "Offline" --token "$TOKEN" store state "$sid" Offline
expect_json store_is_offline 'j["store"]["state_name"]' Offline store show "$sid"
expect_out store_state_up "Up" --token "$TOKEN" store state "$sid" up
expect_json store_is_up_again 'j["store"]["state_name"]' Up store show "$sid"
expect store_tombstone_with_regions_refused 1 --token "$TOKEN" store state "$sid" Tombstone
expect store_delete_unknown 1 --token "$TOKEN" store delete 424242
expect_out store_delete_marks_offline "Offline" --token "$TOKEN" store delete "$sid"
expect_json store_deleted_is_offline 'j["store"]["state_name"]' Offline store show "$sid"
expect store_back_up 0 --token "$TOKEN" store state "$sid" Up

# ---- schedulers (removed before the operator checks so that nothing races them) ----
expect_out scheduler_list 'balance-leader-scheduler' scheduler list
if grep -q balance-region-scheduler <<<"$out" && [ "$(grep -c . <<<"$out")" -eq 2 ]; then
    pass scheduler_list_two
else
    fail scheduler_list_two "$out"
fi
expect scheduler_remove_needs_token 1 scheduler remove balance-leader-scheduler
expect_out scheduler_remove_full_name removed --token "$TOKEN" scheduler remove balance-leader-scheduler
expect_out scheduler_remove_short_name removed --token "$TOKEN" scheduler remove balance-region
expect_json scheduler_list_empty 'len(j)' 0 scheduler list
expect scheduler_remove_again_not_found 1 --token "$TOKEN" scheduler remove balance-region
expect scheduler_add_unknown 1 --token "$TOKEN" scheduler add shuffle-everything
expect_json scheduler_add_json 'j["status"]' ok --token "$TOKEN" scheduler add balance-region
expect scheduler_add_twice 1 --token "$TOKEN" scheduler add balance-region-scheduler
expect_json scheduler_list_one 'j' "['balance-region-scheduler']" scheduler list
expect scheduler_remove_region_again 0 --token "$TOKEN" scheduler remove balance-region

# ---- regions ----
expect_out region_list '^ID +START-KEY' region list
table_ok region_table "ID START-KEY END-KEY VERSION CONF-VER LEADER-STORE STORES SIZE" 1
ctl --json region list
rid=$(jq_py 'j["regions"][0]["id"]')
leader_store=$(jq_py 'j["regions"][0]["leader"]["store_id"]')
other_store=$(jq_py '[p["store_id"] for p in j["regions"][0]["peers"] if p["store_id"] != j["regions"][0]["leader"]["store_id"]][0]')
ctl region list
first_row=$(tail -n +2 <<<"$out" | awk -v id="$rid" '$1 == id')
if [ -n "$first_row" ] && [ "$(awk '{print $2, $3, $6}' <<<"$first_row")" == "-inf +inf $leader_store" ]; then
    pass region_row_fields
else
    fail region_row_fields "[$first_row]"
fi
expect_out region_show "^id +$rid$" region show "$rid"
if grep -qE "^start key +-inf$" <<<"$out" && grep -qE "^ +peer [0-9]+ on store $leader_store \(leader\)$|^peers +peer [0-9]+ on store $leader_store \(leader\)$" <<<"$out"; then
    pass region_show_fields
else
    fail region_show_fields "$out"
fi
expect_json region_show_json 'j["id"], len(j["peers"])' "$rid 3" region show "$rid"
expect region_show_unknown 1 region show 424242
expect_json region_key_raw 'j["id"]' "$rid" region key "some/key with spaces?&%"
expect_json region_key_hex 'j["id"]' "$rid" --hex region key 00ff10
expect_out region_key_table "^id +$rid$" region key abc
# Split requests the scheduler refuses: exit 1 with its message, and nothing queued.
expect region_split_needs_token 1 region split m
if grep -q "admin token" <<<"$err"; then pass region_split_token_message; else fail region_split_token_message "$err"; fi
expect region_split_empty_key 1 --token "$TOKEN" region split ""
if grep -q "empty" <<<"$err"; then pass region_split_empty_message; else fail region_split_empty_message "$err"; fi
expect region_split_empty_among_good 1 --token "$TOKEN" region split m "" x
expect region_split_empty_hex_key 1 --token "$TOKEN" --hex region split 6d ""
many=()
for i in $(seq 1 257); do many+=("k$i"); done
expect region_split_too_many_keys 1 --token "$TOKEN" region split "${many[@]}"
if grep -q "at most 256" <<<"$err"; then pass region_split_too_many_message; else fail region_split_too_many_message "$err"; fi
expect_json region_split_nothing_queued 'len(j)' 0 operator list

# ---- operators ----
expect_out operator_list_empty '^REGION +NAME +KIND +STEP +STEPS +CREATED$' operator list
expect operator_add_needs_token 1 operator add transfer-leader "$rid" "$other_store"
expect operator_add_unknown_region 1 --token "$TOKEN" operator add transfer-leader 424242 "$other_store"
expect operator_add_peer_already_there 1 --token "$TOKEN" operator add add-peer "$rid" "$other_store"
expect operator_remove_none 1 --token "$TOKEN" operator remove "$rid"
expect operator_show_none 1 operator show 424242
# With every store paused no heartbeat can finish an operator: add, see it, remove it.
for p in "${store_pids[@]}"; do kill -STOP "$p"; done
# A split request is queued as an operator (the paused leader never carries it out), shown with
# its keys; a second one for the same region is refused; removing it cancels it.
expect_out region_split_queued "split queued at 2 keys for region $rid;" --token "$TOKEN" region split m 'k\x'
expect_json region_split_operator 'j["desc"], j["kind"], j["steps"][0]["type"], j["steps"][0]["keys"]' "split-region split-region split-region ['6B5C78', '6D']" operator show "$rid"
expect_out region_split_operator_table "^ +split key k\\\\\\\\x$" operator show "$rid"
expect_out region_split_operator_list "split-region at 2 keys" operator list
expect region_split_twice_refused 1 --token "$TOKEN" --hex region split 70
if grep -q "already has an operator" <<<"$err"; then pass region_split_twice_message; else fail region_split_twice_message "$err"; fi
expect region_split_remove 0 --token "$TOKEN" operator remove "$rid"
expect_json region_split_json 'j["processed-percentage"], j["regions-id"]' "100 [$rid]" --token "$TOKEN" --hex region split 70
expect region_split_remove_again 0 --token "$TOKEN" operator remove "$rid"
expect_out operator_add_transfer "transfer-leader" --token "$TOKEN" operator add transfer-leader "$rid" "$other_store"
expect_out operator_listed "^$rid +admin-transfer-leader|^$rid +transfer-leader" operator list
table_ok operator_table "REGION NAME KIND STEP STEPS CREATED" 1
expect_json operator_show_running 'j["status"], j["steps"][0]["type"], j["steps"][0]["store_id"]' "RUNNING transfer-leader $other_store" operator show "$rid"
expect_out operator_show_table '^status +RUNNING$' operator show "$rid"
expect operator_add_while_running 1 --token "$TOKEN" operator add transfer-leader "$rid" "$other_store"
expect_out operator_remove removed --token "$TOKEN" operator remove "$rid"
expect_json operator_show_canceled 'j["status"]' CANCEL operator show "$rid"
expect_json operator_list_empty_again 'len(j)' 0 operator list
for p in "${store_pids[@]}"; do kill -CONT "$p"; done
# Now a transfer the stores carry out.
expect operator_add_transfer_again 0 --token "$TOKEN" operator add transfer-leader "$rid" "$other_store"
leader_moved() {
    local o
    o=$("$CTL" --pd-http "$HTTP" --json region show "$rid" 2>/dev/null) || return 1
    [ "$(python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["leader"]["store_id"])' <<<"$o")" == "$other_store" ]
}
if wait_for 30 leader_moved; then pass transfer_leader_carried_out; else fail transfer_leader_carried_out; fi
op_success() {
    local o
    o=$("$CTL" --pd-http "$HTTP" --json operator show "$rid" 2>/dev/null) || return 1
    grep -q '"SUCCESS"' <<<"$o"
}
if wait_for 30 op_success; then pass operator_status_success; else fail operator_status_success; fi

# ---- many regions: paging and key look-ups ----
# Split the one region at g, n and t (the leaders carry it out), then page through the four.
expect region_split_for_paging 0 --token "$TOKEN" region split g n t
four_regions() {
    local o
    o=$("$CTL" --pd-http "$HTTP" --json region list 2>/dev/null) || return 1
    python3 -c 'import json,sys; r=json.loads(sys.stdin.read())["regions"]
sys.exit(0 if len(r) == 4 and all(x["leader"]["id"] for x in r) else 1)' <<<"$o"
}
if wait_for 60 four_regions; then pass split_into_four_regions; else fail split_into_four_regions "see $dir"; fi
expect_out region_list_page_one '^\(next page: region list --limit 2 --start n\)$' --limit 2 region list
table_ok region_page_table "ID START-KEY END-KEY VERSION CONF-VER LEADER-STORE STORES SIZE" 2
rows=$(tail -n +2 <<<"$out" | grep -vc '^(next page')
if [ "$rows" -eq 2 ] && grep -qE '^[0-9]+ +-inf +g ' <<<"$out"; then pass region_page_one_rows; else fail region_page_one_rows "$out"; fi
expect_out region_list_page_two '^[0-9]+ +t +\+inf ' --limit 2 --start n region list
if ! grep -q 'next page' <<<"$out" && [ "$(tail -n +2 <<<"$out" | grep -c .)" -eq 2 ]; then
    pass region_page_two_is_last
else
    fail region_page_two_is_last "$out"
fi
expect_json region_list_start_inside 'j["count"], j["regions"][0]["start_key"]' "1 6E" --limit 1 --start p region list
expect_json region_list_start_hex 'j["regions"][0]["start_key"]' "67" --hex --limit 1 --start 6800 region list
expect region_list_start_bad_hex 2 --hex --start 6z region list
expect region_list_extra_argument 2 region list more
expect_json region_key_of_key 'j["start_key"], j["end_key"]' "6E 74" region key pear
expect_out region_key_of_key_table '^start key +n$' region key pear
# The HTTP paths behind them, PD's shapes, and bad input as 4xx with a JSON message.
http_json() {
    python3 - "$HTTP" "$1" <<'PY'
import json, sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen("http://" + sys.argv[1] + sys.argv[2], timeout=5) as r:
        print(r.status, json.dumps(json.loads(r.read())))
except urllib.error.HTTPError as e:
    body = json.loads(e.read())
    print(e.code, "error" if isinstance(body.get("error"), str) else "no-error-field")
PY
}
check_http() {
    local name=$1 path=$2 want=$3 got
    got=$(http_json "$path")
    if grep -qE -- "$want" <<<"$got"; then pass "$name"; else fail "$name" "$path: $got"; fi
}
check_http http_regions_count /pd/api/v1/regions/count '^200 \{"count": 4\}$'
check_http http_regions_page '/pd/api/v1/regions?limit=3&key=67' '^200 \{"count": 3,'
check_http http_regions_key_scan '/pd/api/v1/regions/key?key=h&end_key=u' '^200 \{"count": 3,'
check_http http_regions_store "/pd/api/v1/regions/store/$sid" '^200 \{"count": 4,'
check_http http_region_key /pd/api/v1/region/key/zebra '"start_key": "74"'
check_http http_regions_bad_limit '/pd/api/v1/regions?limit=none' '^400 error$'
check_http http_regions_bad_key '/pd/api/v1/regions?key=xyz' '^400 error$'
check_http http_regions_key_backwards '/pd/api/v1/regions/key?key=z&end_key=a' '^400 error$'
check_http http_regions_store_unknown /pd/api/v1/regions/store/424242 '^404 error$'
check_http http_regions_store_bad_id /pd/api/v1/regions/store/x '^400 error$'

# ---- a store taken offline drains to Tombstone (a live run of the replica checker) ----
# A fourth store joins; store $sid is taken offline; the replica checker adds a replacement for
# each of its peers (moving leaders off it first), removes the offline peers, and the store
# becomes Tombstone once it holds none.
a=127.0.0.1:$(free_port)
"$BINDIR"/tinykv-server --addr "$a" --data-dir "$dir/store3" --scheduler "$GRPC" \
    --status-addr 127.0.0.1:0 --log-level warn 2>>"$dir/store3.log" &
store_pids+=($!)
store_addrs+=("$a")
four_up() {
    local o
    o=$("$CTL" --pd-http "$HTTP" --json store list 2>/dev/null) || return 1
    python3 -c 'import json,sys; j=json.loads(sys.stdin.read())
sys.exit(0 if sum(s["store"]["state_name"] == "Up" for s in j["stores"]) == 4 else 1)' <<<"$o"
}
if wait_for 30 four_up; then pass fourth_store_up; else fail fourth_store_up "see $dir"; fi
expect_out store_offline_for_drain "Offline" --token "$TOKEN" store state "$sid" Offline
drained() {
    local o
    o=$("$CTL" --pd-http "$HTTP" --json store show "$sid" 2>/dev/null) || return 1
    python3 -c 'import json,sys; j=json.loads(sys.stdin.read())
sys.exit(0 if j["store"]["state_name"] == "Tombstone" else 1)' <<<"$o"
}
if wait_for 120 drained; then pass offline_store_becomes_tombstone; else fail offline_store_becomes_tombstone "see $dir"; fi
expect_json regions_moved_off_tombstone "all(len(r['peers']) == 3 and $sid not in [p['store_id'] for p in r['peers']] for r in j['regions']), len(j['regions'])" "True 4" region list
check_http http_regions_store_tombstone "/pd/api/v1/regions/store/$sid" '^200 \{"count": 0,'

# ---- a store down past max-store-down-time has its replicas replaced ----
# A fifth store joins (three Up stores besides the one about to die); with max-store-down-time
# at 20s (the shortest the scheduler takes: 3s is refused, it would find live stores down
# between two of their 10 s heartbeats), a killed store holding replicas is down soon, and every
# region gets its third replica back on the stores left.
a=127.0.0.1:$(free_port)
"$BINDIR"/tinykv-server --addr "$a" --data-dir "$dir/store4" --scheduler "$GRPC" \
    --status-addr 127.0.0.1:0 --log-level warn 2>>"$dir/store4.log" &
store_pids+=($!)
store_addrs+=("$a")
n_up() {
    local o
    o=$("$CTL" --pd-http "$HTTP" --json store list 2>/dev/null) || return 1
    python3 -c 'import json,sys; j=json.loads(sys.stdin.read())
sys.exit(0 if sum(s["store"]["state_name"] == "Up" for s in j["stores"]) == int(sys.argv[1]) else 1)' "$1" <<<"$o"
}
if wait_for 30 n_up 4; then pass fifth_store_up; else fail fifth_store_up "see $dir"; fi
expect config_down_time_below_two_heartbeats_refused 1 --token "$TOKEN" config set max-store-down-time 3s
expect_out config_short_down_time '^max-store-down-time +20s$' --token "$TOKEN" config set max-store-down-time 20s
# The victim: a store holding a replica of the first region that is not the tombstone.
ctl --json region list
victim=$(jq_py '[p["store_id"] for p in j["regions"][0]["peers"] if p["store_id"] != j["regions"][0]["leader"]["store_id"]][0]')
ctl --json store show "$victim"
victim_addr=$(jq_py 'j["store"]["address"]')
victim_pid=
for i in "${!store_addrs[@]}"; do
    [ "${store_addrs[$i]}" == "$victim_addr" ] && victim_pid=${store_pids[$i]}
done
if [ -n "$victim_pid" ]; then kill -KILL "$victim_pid"; pass down_victim_killed; else fail down_victim_killed "$victim_addr"; fi
replaced() {
    local o
    o=$("$CTL" --pd-http "$HTTP" --json region list 2>/dev/null) || return 1
    python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); v=int(sys.argv[1])
sys.exit(0 if all(len(r["peers"]) == 3 and v not in [p["store_id"] for p in r["peers"]] for r in j["regions"]) else 1)' "$victim" <<<"$o"
}
if wait_for 120 replaced; then pass down_store_replicas_replaced; else fail down_store_replicas_replaced "victim $victim; see $dir"; fi
expect_json down_store_shown_down 'j["store"]["state_name"]' Down store show "$victim"

# ---- the scheduler unreachable: exit 3, within the timeout ----
kill -STOP "$pd_pid"
t0=$(date +%s%N)
expect paused_scheduler_exits_3 3 --timeout 500 tso
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
if [ "$ms" -lt 3000 ]; then pass "paused_scheduler_times_out_in_${ms}ms"; else fail paused_scheduler_timeout "${ms}ms"; fi
if grep -q "cannot reach the scheduler" <<<"$err"; then pass unreachable_message; else fail unreachable_message "$err"; fi
kill -CONT "$pd_pid"
expect scheduler_back 0 tso
kill -KILL "$pd_pid"
wait "$pd_pid" 2>/dev/null
pd_pid=
expect dead_scheduler_exits_3 3 --timeout 500 store list
expect dead_scheduler_mutation_exits_3 3 --timeout 500 --token "$TOKEN" config set max-replicas 3

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
