#!/usr/bin/env bash
# bench.sh — `make bench`: starts a standalone store in a temporary directory and prints raw KV figures.
set -euo pipefail
cd "$(dirname "$0")/.."
BINDIR=${BINDIR:-bin}
dir=$(mktemp -d /tmp/tinykv-bench-XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BINDIR"/tinykv-server --standalone --addr 127.0.0.1:$port --data-dir "$dir" --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
    "$BINDIR"/tinykv-ctl --addr 127.0.0.1:$port --timeout 200 raw get x >/dev/null 2>&1 || [ $? -eq 1 ] && break
    sleep 0.1
done
echo "standalone store, synced writes, one machine ($(nproc) cores), loopback gRPC:"
for t in 1 4 16; do
    "$BINDIR"/tinykv-ctl --addr 127.0.0.1:$port bench raw --ops 20000 --threads $t --value-size 100
done
"$BINDIR"/tinykv-ctl --addr 127.0.0.1:$port bench raw --ops 2000 --threads 4 --value-size 65536
