#!/usr/bin/env bash
# cluster.sh — starts or stops the local TinyKV deployment used by `make run` / `make stop`.
#
# For now this is one standalone store (no scheduler, no Raft) on
# 127.0.0.1:20160 with its data and log under ./.cluster/. Running `start`
# twice is harmless: a live server is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
BINDIR=${BINDIR:-bin}
DIR=.cluster
ADDR=${TINYKV_ADDR:-127.0.0.1:20160}
PIDFILE=$DIR/store1.pid

running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

start() {
    mkdir -p "$DIR"
    if running; then
        echo "tinykv-server already running (pid $(cat "$PIDFILE")) on $ADDR"
    else
        "$BINDIR"/tinykv-server --standalone --addr "$ADDR" --data-dir "$DIR/store1" \
            >>"$DIR/store1.log" 2>&1 &
        echo $! >"$PIDFILE"
        # Ready when a read answers (bounded wait).
        for _ in $(seq 1 100); do
            if "$BINDIR"/tinykv-ctl --addr "$ADDR" --timeout 200 raw get __ready__ >/dev/null 2>&1 ||
                [ $? -eq 1 ]; then
                break
            fi
            running || { echo "tinykv-server failed to start; see $DIR/store1.log" >&2; exit 1; }
            sleep 0.1
        done
        echo "tinykv-server started (pid $(cat "$PIDFILE")) on $ADDR; log in $DIR/store1.log"
    fi
    cat <<EOT

Try it:
  $BINDIR/tinykv-ctl raw put greeting hello
  $BINDIR/tinykv-ctl raw get greeting
  $BINDIR/tinykv-ctl raw scan
  $BINDIR/tinykv-ctl --cf lock raw put k v
Stop it with: make stop
EOT
}

stop() {
    if running; then
        pid=$(cat "$PIDFILE")
        kill -TERM "$pid"
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        echo "tinykv-server stopped"
    else
        echo "nothing running"
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
