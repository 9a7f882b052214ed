#!/usr/bin/env bash
# admin_api.sh — queries the scheduler's HTTP/JSON admin API of the cluster `make run` started.
#
# Environment: PD_HTTP_PORT (default 2378). Read-only: it changes nothing.
set -euo pipefail
HTTP=http://127.0.0.1:${PD_HTTP_PORT:-2378}/pd/api/v1

show() { # PATH
    echo
    echo "\$ curl -s $HTTP/$1"
    curl -fsS --max-time 5 "$HTTP/$1" | python3 -m json.tool
}

curl -fsS --max-time 5 "$HTTP/health" >/dev/null ||
    { echo "no scheduler answers on $HTTP: run 'make run' first" >&2; exit 1; }
show health
show members
show stores
show regions
show region/key/demo
show schedulers
show tso
