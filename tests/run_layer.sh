#!/usr/bin/env bash
# run_layer.sh — runs the tests of one or more layers and prints "N passed, N failed".
#
# For each layer: every cmocka program in $BUILD/tests/<layer>/ (built from
# tests/unit/<layer>/ and tests/cluster/<layer>/), then every executable
# script tests/cluster/<layer>/test_*.sh|*.py. Counts are individual test
# cases: cmocka's "[  PASSED  ]"/"[  FAILED  ]" lines, a script's last
# "N passed, N failed" line (or 1 case by exit status when it prints none).
set -u
BUILD=${BUILD:-build}
export BINDIR=${BINDIR:-bin}
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
cd "$(dirname "$0")/.."

total_pass=0
total_fail=0
failed_names=()

# Runs one test program; adds its counts to the totals.
run_one() {
    local name=$1; shift
    local log
    log=$(mktemp)
    echo "=== $name"
    timeout --signal=KILL "$TEST_TIMEOUT" "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local p f line
    p=$(grep -oE '\[  PASSED  \] [0-9]+ test' "$log" | tail -1 | grep -oE '[0-9]+' | head -1)
    f=$(grep -oE '\[  FAILED  \] [0-9]+ test' "$log" | tail -1 | grep -oE '[0-9]+' | head -1)
    if [ -z "$p$f" ]; then
        line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
        if [ -n "$line" ]; then
            p=$(echo "$line" | sed -E 's/^([A-Za-z-]+: )?([0-9]+) passed, ([0-9]+) failed.*/\2/')
            f=$(echo "$line" | sed -E 's/^([A-Za-z-]+: )?([0-9]+) passed, ([0-9]+) failed.*/\3/')
        fi
    fi
    p=${p:-0}
    f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # crashed, timed out or failed without saying how many
        [ "$rc" -eq 137 ] && echo "$name: killed after ${TEST_TIMEOUT}s"
    fi
    if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        p=1
    fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    [ "$f" -gt 0 ] && failed_names+=("$name")
    rm -f "$log"
    return 0
}

for layer in "$@"; do
    found=0
    for t in "$BUILD"/tests/"$layer"/test_*; do
        [ -x "$t" ] || continue
        found=1
        run_one "$layer/$(basename "$t")" "$t"
    done
    for s in tests/cluster/"$layer"/test_*.sh tests/cluster/"$layer"/test_*.py; do
        [ -f "$s" ] || continue
        found=1
        run_one "$layer/$(basename "$s")" "$s"
    done
    [ "$found" -eq 0 ] && echo "=== $layer: no tests in this layer yet"
done

if [ ${#failed_names[@]} -gt 0 ]; then
    echo "failed: ${failed_names[*]}"
fi
echo "tests: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
