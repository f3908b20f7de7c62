#!/usr/bin/env bash
# Runs each unit-test binary given on the command line from the project root,
# each with its own time limit, and prints a summary. Exit status is non-zero
# if any binary failed.
set -uo pipefail
cd "$(dirname "$0")/.."
# No set -e: a failing test binary is counted, not fatal; the summary and
# exit status report it.
export LB_PROJECT_ROOT=$PWD
limit=${LB_UNIT_TIMEOUT:-600}
tests_passed=0 tests_failed=0 bins_failed=()
for bin in "$@"; do
    name=$(basename "$bin")
    echo "=== $name"
    out=$(mktemp)
    timeout --kill-after=10 "$limit" "$bin" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    p=$(grep -oE '^\[  PASSED  \] [0-9]+' "$out" | awk '{s+=$4} END{print s+0}')
    f=$(grep -oE '^\[  FAILED  \] [0-9]+' "$out" | awk '{s+=$4} END{print s+0}')
    tests_passed=$((tests_passed + p))
    tests_failed=$((tests_failed + f))
    if [ "$rc" -ne 0 ]; then
        bins_failed+=("$name (exit $rc)")
        [ "$f" -eq 0 ] && tests_failed=$((tests_failed + 1))
    fi
    rm -f "$out"
done
echo
echo "unit: $# binaries"
for b in "${bins_failed[@]}"; do echo "unit: FAILED $b"; done
echo "unit: $tests_passed passed, $tests_failed failed"
[ ${#bins_failed[@]} -eq 0 ]
