#!/usr/bin/env bash
# cluster.sh — starts or stops the local TinyKV cluster and its FUSE mount (`make run` / `make stop`).
#
# start: a tinyscheduler-server and three tinykv-server stores on loopback,
# data and logs under $CLUSTER_DIR (default ./.cluster/); waits (bounded) until
# the first region has three replicas and a leader, then mounts $MNT (default
# ./mnt) with bin/tinykv-fuse. stop: unmounts, then stops the stores and the
# scheduler. Running either twice is harmless: live processes are left alone,
# a missing one is started again.
#
# Environment: BINDIR (bin), CLUSTER_DIR (.cluster), MNT (mnt), PD_PORT (2379),
# PD_HTTP_PORT (2378), STORE_PORTS ("20160 20161 20162"), STATUS_PORTS ("20180 20181 20182":
# each store's HTTP status port, in the same order), WAIT_S (60), REGION_SPLIT_SIZE (256KiB:
# small, so that copying a few megabytes into the mount splits regions you can watch with
# `tinykv-ctl region list`; tinykv-server's own default is TiKV's 96MiB), SPLIT_CHECK_MS (2000).
set -euo pipefail
cd "$(dirname "$0")/.."
BINDIR=${BINDIR:-bin}
DIR=${CLUSTER_DIR:-.cluster}
MNT=${MNT:-mnt}
PD_PORT=${PD_PORT:-2379}
PD_HTTP_PORT=${PD_HTTP_PORT:-2378}
STORE_PORTS=${STORE_PORTS:-20160 20161 20162}
STATUS_PORTS=${STATUS_PORTS:-20180 20181 20182}
WAIT_S=${WAIT_S:-60}
REGION_SPLIT_SIZE=${REGION_SPLIT_SIZE:-256KiB}
SPLIT_CHECK_MS=${SPLIT_CHECK_MS:-2000}
PD=127.0.0.1:$PD_PORT
HTTP=127.0.0.1:$PD_HTTP_PORT

alive() { # pidfile
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

mounted() {
    grep -qs " $(realpath -m "$MNT") fuse.tinykv" /proc/mounts
}

# Starts "$name" in the background unless its pidfile names a live process.
launch() { # name args...
    local name=$1
    shift
    if alive "$DIR/$name.pid"; then
        echo "  $name already running (pid $(cat "$DIR/$name.pid"))"
        return
    fi
    "$@" >>"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
    echo "  $name started (pid $!), log $DIR/$name.log"
}

# Number of peers of the first region and whether it has a leader ("3 1").
region_shape() {
    curl -fsS --max-time 2 "http://$HTTP/pd/api/v1/regions" 2>/dev/null |
        python3 -c 'import json,sys
r=json.load(sys.stdin).get("regions") or [{}]
print(len(r[0].get("peers") or []), 1 if (r[0].get("leader") or {}).get("id") else 0)' 2>/dev/null ||
        echo "0 0"
}

# Shows the wait for replicas: one line redrawn in place on a terminal, else a line per change.
progress() { # "peers leader" previous-shape elapsed-seconds
    local peers=${1% *} leader=${1#* }
    local line="  waiting for replicas: $peers/3 peers, $([ "$leader" = 1 ] && echo "a leader" || echo "no leader yet") (${3}s)"
    if [ -t 1 ]; then
        printf '\r\033[K%s' "$line"
        [ "$1" = "3 1" ] && printf '\r\033[K'
    elif [ "$1" != "$2" ]; then
        echo "$line"
    fi
    return 0
}

start() {
    for b in tinyscheduler-server tinykv-server tinykv-fuse; do
        [ -x "$BINDIR/$b" ] || { echo "missing $BINDIR/$b: run make first" >&2; exit 1; }
    done
    [ -e /dev/fuse ] || { echo "/dev/fuse is missing: cannot mount" >&2; exit 1; }
    # A mount whose tinykv-fuse died ("Transport endpoint is not connected") is cleared first.
    if mounted && ! stat "$MNT" >/dev/null 2>&1; then
        fusermount3 -uz "$MNT"
        echo "  cleared a dead mount on $MNT"
    fi
    mkdir -p "$DIR" "$MNT"
    echo "Starting the cluster under $DIR/:"
    launch scheduler "$BINDIR"/tinyscheduler-server --addr "$PD" --http-addr "$HTTP" \
        --data-dir "$DIR/scheduler" --log-level warn
    local i=1 status_ports
    read -r -a status_ports <<<"$STATUS_PORTS"
    for port in $STORE_PORTS; do
        [ -n "${status_ports[$((i - 1))]:-}" ] ||
            { echo "STATUS_PORTS needs one port per store in STORE_PORTS" >&2; exit 1; }
        launch "store$i" "$BINDIR"/tinykv-server --addr "127.0.0.1:$port" \
            --status-addr "127.0.0.1:${status_ports[$((i - 1))]}" \
            --data-dir "$DIR/store$i" --scheduler "$PD" --log-level warn \
            --region-split-size "$REGION_SPLIT_SIZE" --split-check-ms "$SPLIT_CHECK_MS"
        i=$((i + 1))
        # The first store bootstraps the cluster; give it a head start.
        [ "$i" -eq 2 ] && sleep 0.5
    done

    local deadline=$((SECONDS + WAIT_S)) start=$SECONDS shape last=""
    while :; do
        shape=$(region_shape)
        progress "$shape" "$last" $((SECONDS - start))
        last=$shape
        [ "$shape" = "3 1" ] && break
        if [ $SECONDS -ge $deadline ]; then
            echo "the region did not reach 3 replicas and a leader within ${WAIT_S}s (now: $shape);" \
                "see $DIR/*.log" >&2
            exit 1
        fi
        for p in "$DIR"/*.pid; do
            alive "$p" || { echo "$(basename "$p" .pid) exited; see $DIR/*.log" >&2; exit 1; }
        done
        sleep 0.2
    done
    echo "  region replicated on 3 stores with a leader"

    if mounted; then
        echo "  $MNT already mounted"
    else
        "$BINDIR"/tinykv-fuse -o scheduler="$PD" "$MNT"
        echo "  mounted $MNT (tinykv-fuse, scheduler $PD)"
    fi
    cat <<EOT

Try it:
  echo hello > $MNT/greeting && cat $MNT/greeting
  mkdir -p $MNT/docs/notes && cp README.md $MNT/docs/ && ls -l $MNT/docs
  mv $MNT/greeting $MNT/docs/ && rm $MNT/docs/greeting
  getfattr -d $MNT/docs/README.md        # key, region, leader store, commit ts (package attr)
  ts=\$(curl -s http://$HTTP/pd/api/v1/tso | python3 -c 'import json,sys; print(json.load(sys.stdin)["ts"])')
  ls $MNT/.snapshots/\$ts/docs            # the keyspace as of that timestamp, read-only
  xdg-open http://$HTTP/dashboard          # the cluster live in a browser (stores, regions, leaders)
  curl -s http://127.0.0.1:${status_ports[0]}/metrics | grep tinykv_grpc   # a store's metrics (also /status, /regions)
  curl -s http://$HTTP/pd/api/v1/regions   # the scheduler's admin API
  bin/tinykv-ctl --pd-http $HTTP region list   # the same, as a table (also: store list, tso)
  bin/tinykv-ctl --pd $PD raw put k v; bin/tinykv-ctl --pd $PD raw get k   # raw KV, routed
  examples/demo_fs.sh; examples/admin_api.sh
Stop it with: make stop
EOT
}

stop_proc() { # name
    local pidfile=$DIR/$1.pid pid
    if alive "$pidfile"; then
        pid=$(cat "$pidfile")
        kill -TERM "$pid"
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        echo "  $1 stopped"
    fi
    rm -f "$pidfile"
}

stop() {
    if mounted; then
        fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"
        echo "  unmounted $MNT"
    fi
    for p in "$DIR"/store*.pid; do
        [ -e "$p" ] && stop_proc "$(basename "$p" .pid)"
    done
    stop_proc scheduler
    echo "stopped (data kept in $DIR/; rm -rf $DIR for a fresh cluster)"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
