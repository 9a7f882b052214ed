#!/usr/bin/env bash
# test_standalone_ctl.sh — a real standalone tinykv-server process driven by tinykv-ctl, across a restart.
set -u
cd "$(dirname "$0")/../../.."
BINDIR=${BINDIR:-bin}
CTL="$BINDIR/tinykv-ctl"
dir=$(mktemp -d /tmp/tinykv-ctl-test-XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
pid=
passed=0
failed=0

start_server() {
    "$BINDIR"/tinykv-server --standalone --addr "$addr" --data-dir "$dir/data" --log-level warn \
        --status-addr 127.0.0.1:0 \
        2>>"$dir/server.log" &
    pid=$!
    # Ready when a read answers: 0 (found) or 1 (not found); bounded.
    for _ in $(seq 1 150); do
        "$CTL" --addr "$addr" --timeout 200 raw get __ready__ >/dev/null 2>&1
        [ $? -le 1 ] && return 0
        sleep 0.1
    done
    echo "server did not become ready"; cat "$dir/server.log"; return 1
}

stop_server() {
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid"
}

cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

# check NAME EXPECTED COMMAND... — the command's stdout must equal EXPECTED.
check() {
    local name=$1 want=$2; shift 2
    local got
    got=$("$@" 2>/dev/null)
    if [ "$got" == "$want" ]; then
        passed=$((passed + 1)); echo "PASS $name"
    else
        failed=$((failed + 1)); echo "FAIL $name: want [$want] got [$got]"
    fi
}

# check_status NAME STATUS COMMAND... — the command must exit with STATUS.
check_status() {
    local name=$1 want=$2; shift 2
    "$@" >/dev/null 2>&1
    local rc=$?
    if [ "$rc" -eq "$want" ]; then
        passed=$((passed + 1)); echo "PASS $name"
    else
        failed=$((failed + 1)); echo "FAIL $name: exit $rc, want $want"
    fi
}

start_server || exit 1
C="$CTL --addr $addr"
check "put then get" "world" bash -c "$C raw put hello world && $C raw get hello"
check_status "missing key exits 1" 1 $C raw get only-lock
check "put and get in lock cf" "L" bash -c "$C --cf lock raw put only-lock L && $C --cf lock raw get only-lock"
check_status "a key put in lock cf is not in default" 1 $C raw get --cf default only-lock
check_status "a key put in lock cf is not in write" 1 $C raw get --cf write only-lock
check "hex binary key and value" "00ff10" bash -c "$C --hex raw put 00ff 00ff10 && $C --hex raw get 00ff"
check "scan in key order with limit" $'a\t1\nb\t2' bash -c "$C raw put c 3 && $C raw put b 2 && $C raw put a 1 && $C raw scan a --limit 2"
check "scan from a start key" $'b\t2\nc\t3' bash -c "$C raw scan b --limit 2"
check "delete removes" "" bash -c "$C raw put gone x && $C raw delete gone && $C raw get gone"
check_status "unknown cf is an error" 1 $C --cf nope raw put k v
check_status "empty key is an error" 1 $C raw put "" v
check_status "usage error exits 2" 2 $C raw frobnicate

# tinykv-ctl bench: summary lines only into a pipe; a live progress line on a terminal.
bench_out=$($C bench raw --ops 400 --threads 2 --value-size 10)
if [ "$(echo "$bench_out" | grep -c '^raw \(put\|get\) .*ops/s')" -eq 2 ] &&
    [ "$(echo "$bench_out" | wc -l)" -eq 2 ] && ! echo "$bench_out" | grep -q $'[\r\e]'; then
    passed=$((passed + 1)); echo "PASS bench into a pipe prints two plain summary lines"
else
    failed=$((failed + 1)); echo "FAIL bench into a pipe: [$bench_out]"
fi
# The command runs on a pseudo-terminal (Python's pty); everything it wrote comes back.
tty_out=$(/usr/bin/python3 - $C bench raw --ops 400 --threads 2 --value-size 10 <<'PY'
import os, subprocess, sys
master, slave = os.openpty()
p = subprocess.Popen(sys.argv[1:], stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
os.close(slave)
out = b""
while True:
    try:
        chunk = os.read(master, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
p.wait()
sys.stdout.write(out.decode(errors="replace").replace("\r", "<CR>").replace("\x1b[K", "<EL>"))
sys.exit(p.returncode)
PY
)
tty_rc=$?
if [ $tty_rc -eq 0 ] && echo "$tty_out" | grep -q '<CR><EL>raw put *[0-9]*/400 ops (.*ops/s.* s' &&
    echo "$tty_out" | grep -q '<CR><EL>raw get *[0-9]*/400 ops' &&
    echo "$tty_out" | grep -q '<CR><EL>raw put *ops=400 threads=2'; then
    passed=$((passed + 1)); echo "PASS bench on a terminal draws a progress line, then the summary"
else
    failed=$((failed + 1)); echo "FAIL bench on a terminal (exit $tty_rc): [$tty_out]"
fi

stop_server
check_status "unreachable store exits 3" 3 $C --timeout 300 raw get hello
start_server || exit 1
check "data survives a restart" "world" $C raw get hello
check "lock cf survives a restart" "L" $C --cf lock raw get only-lock
check "binary survives a restart" "00ff10" $C --hex raw get 00ff
stop_server
pid=

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
